"""``SimMeter``: a smart meter acting as the SE ESI and trust centre of one premise HAN.

Upstream (a head-end emulator, the gateway's test route, the fleet) talks to it with bytes and
plain addressing only: ``send(address, cluster_id, zcl_frame)`` where the address is a device
EUI-64, ``ALL_DEVICES`` or ``METER`` (the meter's own Metering/Time server), and an ``upstream``
callback receiving ``RelayedFrame``, ``HanEvent`` and ``Reachability`` records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.addressing import check_eui64
from simulators.client_device import ClientDevice
from simulators.clock import TimerClock
from simulators.device import DRLC, MESSAGING, METERING, PRICE, TIME, SimDevice
from simulators.errors import ProvisioningError, SimulatorError
from simulators.frame_cache import decode_shared
from simulators.han import HanProvisioning, MeterDeviceStatus
from simulators.usage import Curtailment, IntervalRead, LoadShape, RegisterNow, interval_reads, load_shape, register_now
from zigbee_se import DecodedFrame, DecodeError, SEVersion, decode_frame, encode_frame
from zigbee_se.esi import REQUESTS, Esi, read_records, time_attributes

# GetProfileResponse status (SE 1.1+ Metering; ENERGY_DATA.md §3.5).
PROFILE_OK, PROFILE_UNDEFINED_CHANNEL, PROFILE_CHANNEL_UNSUPPORTED = 0, 1, 2
PROFILE_TOO_MANY_PERIODS, PROFILE_NO_INTERVALS = 4, 5
# Periods in one GetProfileResponse: 10 bytes of header and fields and 3 a period stay within one
# APS frame with APS encryption (73 bytes, no fragmentation).
MAX_PROFILE_PERIODS = 20


@dataclass(frozen=True)
class ProfileAnswer:
    status: int
    end_time: int  # unix seconds: the end of the most recent period
    intervals: list[int]  # Wh per 15-minute period, the most recent first


ALL_DEVICES = "all"
METER = "meter"
Address = bytes | str

CLUSTER_OF_NAME = {"price": PRICE, "drlc": DRLC, "messaging": MESSAGING, "metering": METERING,
                   "time": TIME}


@dataclass(frozen=True, slots=True)
class RelayedFrame:
    """A frame a device sent, relayed upstream unchanged."""

    meter_id: str
    eui64: bytes
    time: float
    cluster_id: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class HanEvent:
    """Provisioning and join progress: han_initialized, provisioned, find_pending, joined,
    join_failed (reason), deleted, cleared, decommissioned."""

    meter_id: str
    eui64: bytes | None
    time: float
    kind: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Reachability:
    meter_id: str
    time: float
    reachable: bool


MeterEvent = RelayedFrame | HanEvent | Reachability
Upstream = Callable[[MeterEvent], None]


class JoinedDevice:
    """What the meter knows of a joined device: its clusters (simple descriptor) and, for the
    DRLC broadcast filter, its DRLC client attributes. Those are read from the device as they are
    now, not as they were at join: an ESI may have rewritten them (Write Attributes), and the
    filter must never withhold an event the device itself would take."""

    __slots__ = ("clusters", "device")

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.clusters = frozenset(CLUSTER_OF_NAME[c] for c in device.profile.clusters)

    @property
    def device_class(self) -> int:
        if DRLC not in self.clusters:
            return 0
        drlc = getattr(self.device, "drlc", None)
        return int(drlc.device_class) if drlc is not None else self.device.profile.device_class

    @property
    def ueg(self) -> int:
        drlc = getattr(self.device, "drlc", None)
        return int(drlc.ueg) if drlc is not None else self.device.profile.utility_enrollment_group


class SimMeter:
    __slots__ = (
        "answer_delay_s", "base_load_w", "clock", "devices", "enhanced", "esi", "esi_id", "eui64",
        "frames_lost", "han", "hop_delay_s", "join_time_s", "reachable", "relay_requests",
        "se_version", "start_energy_wh", "started", "upstream", "usage_seed",
    )

    def __init__(self, esi_id: str, clock: TimerClock, *, eui64: bytes | None = None,
                 se_version: str = "1.1", enhanced: bool = False, base_load_w: float = 800.0,
                 upstream: Upstream | None = None, answer_delay_s: float = 0.05,
                 hop_delay_s: float = 0.02, join_time_s: float = 2.0,
                 relay_requests: bool = False, start_energy_wh: float = 0.0, usage_seed: int = 0) -> None:
        self.esi_id = esi_id
        self.clock = clock
        self.eui64 = eui64 if eui64 is not None else int(esi_id[-16:]).to_bytes(8, "little")
        self.se_version = SEVersion.parse(se_version)
        self.enhanced = enhanced
        self.han = HanProvisioning(enhanced)
        self.devices: dict[bytes, JoinedDevice] = {}
        self.esi = Esi()  # the SE server rules, shared with the gateway's radio route
        self.upstream = upstream
        self.reachable = True
        self.answer_delay_s = answer_delay_s
        self.hop_delay_s = hop_delay_s
        self.join_time_s = join_time_s
        self.relay_requests = relay_requests
        self.base_load_w = base_load_w
        self.start_energy_wh = start_energy_wh
        self.started = clock.now()
        self.frames_lost = 0
        self.usage_seed = usage_seed  # the premise's simulated usage (simulators/usage.py)

    # ================================================================= upstream side
    def _up(self, event: MeterEvent) -> None:
        if self.reachable and self.upstream is not None:
            self.upstream(event)

    def _han_event(self, kind: str, eui64: bytes | None = None, reason: str | None = None) -> None:
        self._up(HanEvent(self.esi_id, eui64, self.clock.now(), kind, reason))

    def _require_reachable(self, operation: str) -> None:
        if not self.reachable:
            raise ProvisioningError("meter", self.esi_id, f"unreachable: {operation} not delivered")

    def set_reachable(self, reachable: bool) -> None:
        """Cut or restore the meter's WAN link. While cut, frames from upstream are lost."""
        if reachable == self.reachable:
            return
        if reachable:
            self.reachable = True
            self._up(Reachability(self.esi_id, self.clock.now(), True))
        else:
            self._up(Reachability(self.esi_id, self.clock.now(), False))
            self.reachable = False

    def unreachable_for(self, seconds: float) -> None:
        self.set_reachable(False)
        self.clock.call_later(seconds, self.set_reachable, True)

    # ----------------------------------------------------------------- provisioning
    def initialize_han(self) -> None:
        self._require_reachable("initialize_han")
        self.han.initialize()
        self._han_event("han_initialized")

    def provision_device(self, eui64: bytes, install_code: bytes | None = None, *,
                         link_key: bytes | None = None, join_window_s: float = 86_400.0) -> None:
        self._require_reachable("provision_device")
        self.han.provision(eui64, install_code=install_code, link_key=link_key,
                           join_window_s=join_window_s, now=self.clock.now())
        self._han_event("provisioned", bytes(eui64))

    def delete_device(self, eui64: bytes) -> None:
        self._require_reachable("delete_device")
        self.han.delete(eui64)
        self._leave(eui64)
        self._han_event("deleted", eui64)

    def clear_devices(self) -> None:
        self._require_reachable("clear_devices")
        for eui in self.han.clear():
            self._leave(eui)
        self._han_event("cleared")

    def decommission_han(self) -> None:
        self._require_reachable("decommission_han")
        for eui in self.han.decommission():
            self._leave(eui)
        self._han_event("decommissioned")

    def _leave(self, eui64: bytes) -> None:
        joined = self.devices.pop(eui64, None)
        self.esi.forget(eui64)
        if joined is not None:
            joined.device.detach()

    # ----------------------------------------------------------------- a device joins
    def join(self, device: SimDevice) -> None:
        """The device, in radio range, asks to join with its own install code.

        First contact is immediate (find-pending); the key check completes ``join_time_s`` later
        with ``joined`` or ``join_failed`` and a reason (see ``simulators.han.JoinFailure``)."""
        self._heard(device.eui64)
        failure = self.han.first_contact(device.eui64, self.clock.now())
        if failure is not None:
            self._han_event("join_failed", device.eui64, str(failure))
            return
        self._han_event("find_pending", device.eui64)
        self.clock.call_later(self.join_time_s, self._complete_join, device)

    def _complete_join(self, device: SimDevice) -> None:
        lc = device.profile.device_type == "load_control" or device.profile.has("drlc")
        failure = self.han.complete_join(device.eui64, device.derive_link_key(), lc)
        if failure is not None:
            self._han_event("join_failed", device.eui64, str(failure))
            return
        self.devices[device.eui64] = JoinedDevice(device)
        eui = device.eui64
        device.attach(lambda cluster, frame: self._from_device(eui, cluster, frame))
        self._han_event("joined", device.eui64)
        device.on_joined()

    # ----------------------------------------------------------------- frames from upstream
    def send(self, address: Address, cluster_id: int, zcl_frame: bytes) -> int:
        """Deliver a frame from upstream. Returns how many devices it was handed to (0 when the
        meter is unreachable: the frame is lost at the meter, as in the field)."""
        if not self.reachable:
            self.frames_lost += 1
            return 0
        try:
            decoded: DecodedFrame | None = decode_shared(cluster_id, zcl_frame)
        except DecodeError:
            decoded = None  # still forwarded: the device's answer is what the sender must see
        if address == METER:
            if decoded is not None:
                self._answer_upstream_read(cluster_id, decoded)
            return 0
        device: bytes | None = None
        if address == ALL_DEVICES:
            targets = [j for j in self.devices.values() if cluster_id in j.clusters]
            if cluster_id == DRLC and decoded is not None and "device_class" in decoded.fields:
                dc = decoded.fields["device_class"]
                ueg = decoded.fields["utility_enrollment_group"]
                targets = [j for j in targets if j.device_class & dc
                           and (ueg == 0 or j.ueg in (0, ueg))]
        elif isinstance(address, bytes | bytearray):
            device = bytes(address)
            joined = self.devices.get(device)
            targets = [joined] if joined is not None else []
        else:
            raise SimulatorError("address", address, "a device EUI-64 (8 bytes), 'all' or 'meter'")
        if decoded is not None and decoded.frame_type == 1:
            self.esi.record(decoded.command, decoded.fields, self.clock.now(), device)
        later = self.clock.call_later
        for j in targets:
            later(self.hop_delay_s, j.device.deliver, cluster_id, zcl_frame)
        return len(targets)

    def _answer_upstream_read(self, cluster_id: int, frame: DecodedFrame) -> None:
        if frame.command != "read_attributes":
            return
        values = self._server_attributes(cluster_id)
        if values is None:
            return
        reply = encode_frame(cluster_id, "read_attributes_response",
                             {"records": read_records(values, frame.fields["attribute_ids"])},
                             tsn=frame.tsn, disable_default_response=True)
        self._up(RelayedFrame(self.esi_id, self.eui64, self.clock.now(), cluster_id, reply))

    # ----------------------------------------------------------------- frames from devices
    def _heard(self, eui64: bytes) -> None:
        record = self.han.records.get(eui64)
        if record is not None:
            record.last_heard = self.clock.now()

    def _from_device(self, eui64: bytes, cluster_id: int, zcl_frame: bytes) -> None:
        self._heard(eui64)
        try:
            frame: DecodedFrame | None = decode_frame(cluster_id, zcl_frame)
        except DecodeError:
            frame = None
        if frame is not None:
            # The ESI's answers (zigbee_se.esi): requests, Default Responses to the devices'
            # answers. SL sends several answers one per tick: keep them 1 s apart.
            metering = {METERING: self._local_metering_attributes()} if cluster_id == METERING else None
            replies = self.esi.answer(frame, self.clock.now(), eui64, se_version=self.se_version,
                                      attributes=metering)
            joined = self.devices.get(eui64)
            if joined is not None:
                for i, (reply_cluster, reply) in enumerate(replies):
                    self.clock.call_later(self.answer_delay_s + i, joined.device.deliver, reply_cluster, reply)
            if frame.command in REQUESTS and not self.relay_requests:
                return
        if self.reachable and self.upstream is not None:
            self.upstream(RelayedFrame(self.esi_id, eui64, self.clock.now(), cluster_id, zcl_frame))

    def _server_attributes(self, cluster_id: int) -> dict[int, Any] | None:
        if cluster_id == TIME:
            return time_attributes(self.clock.now())
        if cluster_id == METERING:
            return self.metering_attributes()
        return None

    def _local_metering_attributes(self) -> dict[int, Any]:
        """What the meter's own HAN devices (in-home displays) read: the live model. Its register
        (`summation_wh`) costs nothing to compute; the usage model's register sums every day since
        its epoch (about 1 s per premise the first time), which a fleet of 2,000 premises whose
        displays read the meter at once cannot pay. Routes read `metering_attributes`."""
        return {**self.metering_attributes(register=False), 0x0000: int(self.summation_wh())}

    def metering_attributes(self, *, register: bool = True) -> dict[int, Any]:
        """The Metering server's attributes. CurrentSummationDelivered is the usage model's register
        (`register_read`, which agrees with the interval data to the Wh), so a Read Attributes over
        the HAN, an on-demand read through a head-end and the interval data all give one number;
        InstantaneousDemand is the live load (devices' loads included: a curtailment shows at once)."""
        delivered = register_now(self.usage_shape(), self.clock.now(), self.curtailments()).delivered_wh \
            if register else 0
        return {
            0x0000: delivered,  # CurrentSummationDelivered, Wh (divisor 1000)
            0x0200: 0x00,  # Status
            0x0300: 0x00,  # UnitofMeasure kWh
            0x0301: 1,  # Multiplier
            0x0302: 1000,  # Divisor: values are in Wh / W
            0x0303: 0x2B,  # SummationFormatting: 5 left, 3 right of the point
            0x0306: 0x00,  # MeteringDeviceType electric
            0x0400: int(self.demand_w()),  # InstantaneousDemand, W (int24)
        }

    # ----------------------------------------------------------------- metering model
    def demand_w(self) -> float:
        return self.base_load_w + sum(j.device.load_w for j in self.devices.values()
                                      if isinstance(j.device, ClientDevice))

    def summation_wh(self) -> float:
        base = self.base_load_w * (self.clock.now() - self.started) / 3600.0
        return self.start_energy_wh + base + sum(j.device.energy_wh()
                                                 for j in self.devices.values())

    # ----------------------------------------------------------------- usage (interval data)
    def usage_shape(self) -> LoadShape:
        return load_shape(self.esi_id, self.usage_seed)

    def curtailments(self) -> list[Curtailment]:
        """What load-control events did to the premise's cooling: each stretch during which a
        thermostat or load-control device drew less than its normal load (its first logged load),
        with the share it kept. Such a device is taken to control the air conditioner (a PCT's
        set-back, or a switch on the compressor); the shares of several devices multiply."""
        now = self.clock.now()
        windows: list[Curtailment] = []
        for joined in self.devices.values():
            device = joined.device
            if device.profile.device_type not in ("pct", "load_control") or not device.load_log:
                continue
            normal = device.load_log[0][1]
            if normal <= 0:
                continue
            log = device.load_log
            for i, (at, watts) in enumerate(log):
                if watts < normal:
                    until = log[i + 1][0] if i + 1 < len(log) else now
                    if until > at:
                        windows.append(Curtailment(at, until, watts / normal))
        return windows

    def read_usage(self, start: float, end: float) -> list[IntervalRead]:
        """The premise's 15-minute intervals starting in [start, end) that have ended by now."""
        if not self.reachable:
            raise SimulatorError("esi_id", self.esi_id, "the meter is unreachable")
        last = min(end, self.clock.now() - 900 + 1e-9)
        return interval_reads(self.usage_shape(), start, last, self.curtailments())

    def profile(self, channel: int, end_time: float, periods: int) -> ProfileAnswer:
        """A GetProfile answer (SE 1.1+ Metering; ENERGY_DATA.md §3.5) from the interval data:
        channel 0 delivered, 1 received; 15-minute periods ending at `end_time` (0: the latest
        ended interval), the most recent first, at most `periods` and MAX_PROFILE_PERIODS."""
        latest = int(self.clock.now()) // 900 * 900
        end = latest if not end_time else min(int(end_time) // 900 * 900, latest)
        if channel not in (0, 1):
            return ProfileAnswer(PROFILE_UNDEFINED_CHANNEL, end, [])
        if channel == 1 and not self.usage_shape().solar_kw:
            return ProfileAnswer(PROFILE_CHANNEL_UNSUPPORTED, end, [])
        if periods > MAX_PROFILE_PERIODS:
            return ProfileAnswer(PROFILE_TOO_MANY_PERIODS, end, [])
        wanted = "consumption" if channel == 0 else "generation"
        start = end - periods * 900
        reads = [r for r in interval_reads(self.usage_shape(), start, end, self.curtailments())
                 if r.channel == wanted]
        if not reads:
            return ProfileAnswer(PROFILE_NO_INTERVALS, end, [])
        by_start = {r.start: r.value_wh for r in reads}
        return ProfileAnswer(PROFILE_OK, end, [by_start.get(end - (i + 1) * 900, 0) for i in range(periods)])

    def register_read(self) -> RegisterNow:
        """The consumption register now, as an on-demand read gets it: it agrees with the
        interval data (`read_usage`) to the Wh."""
        if not self.reachable:
            raise SimulatorError("esi_id", self.esi_id, "the meter is unreachable")
        return register_now(self.usage_shape(), self.clock.now(), self.curtailments())

    def device_status(self, eui64: bytes) -> MeterDeviceStatus | None:
        rec = self.han.records.get(check_eui64(eui64))
        return rec.status if rec is not None else None
