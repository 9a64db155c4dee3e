"""A premise on the virtual clock: one meter, its devices and a log of everything sent upstream.

The quickest way to drive a scenario (tests, notebooks, an integrator's own checks)::

    premise = ScenarioPremise.build(["silabs-pct", "silabs-ihd"])
    premise.send(ALL_DEVICES, "drlc", "load_control_event", {...})
    premise.clock.advance(3600)
    premise.statuses()  # [(eui64, issuer_event_id, event_status), ...] decoded with zigbee_se
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.addressing import install_code_with_crc
from simulators.client_device import ClientDevice
from simulators.clock import DEFAULT_VIRTUAL_START, VirtualClock
from simulators.factory import make_device
from simulators.meter import ALL_DEVICES, HanEvent, MeterEvent, RelayedFrame, SimMeter
from simulators.profiles import FirmwareProfile, load_profiles
from zigbee_se import DecodedFrame, SEVersion, decode_frame, encode_frame, resolve_cluster

__all__ = ["ALL_DEVICES", "ScenarioPremise"]


@dataclass
class ScenarioPremise:
    clock: VirtualClock
    meter: SimMeter
    devices: list[ClientDevice]
    events: list[MeterEvent] = field(default_factory=list)
    tsn: int = 0

    @classmethod
    def build(cls, profile_ids: list[str], *, seed: int = 1, se_version: str = "1.1",
              enhanced: bool = False, join: bool = True,
              profiles: dict[str, FirmwareProfile] | None = None,
              start: float = DEFAULT_VIRTUAL_START) -> ScenarioPremise:
        """A meter with one device per profile id, provisioned, joined and settled; the virtual
        clock starts at `start` (unix seconds)."""
        profiles = profiles if profiles is not None else load_profiles()
        clock = VirtualClock(start=start, seed=seed)
        meter = SimMeter("10443720000000001", clock, se_version=se_version, enhanced=enhanced)
        premise = cls(clock, meter, [])
        meter.upstream = premise.events.append
        meter.initialize_han()
        for i, pid in enumerate(profile_ids):
            eui = (0x000D6F0000000100 + i).to_bytes(8, "little")
            code = install_code_with_crc(bytes([i + 1]) * 16)
            dev = make_device(profiles[pid], eui, code, clock)
            premise.devices.append(dev)
            meter.provision_device(eui, code, join_window_s=3600)
            if join:
                meter.join(dev)
        clock.advance(60)  # join, registration reads and the initial requests settle
        premise.events.clear()
        return premise

    def send(self, address: bytes | str, cluster: str | int, command: str,
             fields: dict[str, Any], *, se_version: SEVersion | str = SEVersion.V1_1,
             disable_default_response: bool = False) -> int:
        """Encode with zigbee_se and hand the frame to the meter as a head-end would."""
        self.tsn = (self.tsn + 1) & 0xFF
        cid = resolve_cluster(cluster)
        frame = encode_frame(cid, command, fields, se_version=se_version, tsn=self.tsn,
                             disable_default_response=disable_default_response)
        return self.meter.send(address, cid, frame)

    def frames(self, eui64: bytes | None = None) -> list[tuple[bytes, float, DecodedFrame]]:
        """Device frames relayed upstream, decoded with zigbee_se."""
        return [(e.eui64, e.time, decode_frame(e.cluster_id, e.frame)) for e in self.events
                if isinstance(e, RelayedFrame) and (eui64 is None or e.eui64 == eui64)]

    def statuses(self, eui64: bytes | None = None) -> list[tuple[int, int]]:
        """(issuer_event_id, event_status) of every Report Event Status, in order."""
        return [(f.fields["issuer_event_id"], f.fields["event_status"])
                for _, _, f in self.frames(eui64) if f.command == "report_event_status"]

    def han_events(self) -> list[tuple[bytes | None, str, str | None]]:
        return [(e.eui64, e.kind, e.reason) for e in self.events if isinstance(e, HanEvent)]
