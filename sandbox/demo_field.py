"""What `hangw demo` puts behind the gateway: every kind of route it has, each with premises on it.

- One emulated head-end per TDSP, reached through the real AMS adapters (`[routes] kind = "adapters"`):
  MultiSpeak (Oncor, AEP Central), IEC 61968-9 over MQTT (CenterPoint, AEP North) and the binary
  cellular protocol (TNMP), as the TDSP profiles say. Each serves the TDSP's simulated premises (meters
  with devices of several firmware profiles, installed and joined). The 61968-9 head-ends meet the
  gateway at an MQTT broker: without one at 127.0.0.1:1883 they are left out, and the demo says so.
- The gateway's own radio (`[routes.radio]`): the EZSP coordinator emulator on loopback TCP, with a
  simulated in-home display in pairing mode that joins once the third party provisions it.

Everything runs in the demo's process and event loop. Field timers run `speed` times faster on the
wall clock (BriskClock): timestamps and expiry agree with the gateway's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from ams_adapters.profiles import load_profile
from sandbox.headends import headend_for_profile
from sandbox.simfield import MIX, SimPremise, build_field, premises
from simulators.addressing import eui64_from_str
from simulators.client_device import ClientDevice
from simulators.clock import RealClock, TimerClock
from simulators.factory import make_device
from simulators.headends.factory import HeadEnd
from simulators.ncp import NcpEmulator
from simulators.ncp import load_profile as load_coordinator_profile
from simulators.profiles import load_profiles
from zigbee_se import parse_install_code

MQTT_BROKER = ("127.0.0.1", 1883)
# How each route is named in the demo's output: in full, and in a step's summary.
ROUTE_NAMES = {"multispeak": "MultiSpeak head-end", "cim": "IEC 61968-9 head-end over MQTT",
               "binary": "binary head-end over TCP", "radio": "the gateway's radio (EZSP coordinator)"}
SHORT_NAMES = {"multispeak": "MultiSpeak", "cim": "IEC 61968-9", "binary": "binary", "radio": "radio"}
# The display at the radio premise: its EUI-64 and the install code printed on it.
RADIO_EUI64 = "00:0d:6f:00:0a:90:69:e7"
RADIO_INSTALL_CODE = "83FED3407A939723A5C639B26916D505C3B5"
RADIO_DEVICE_NAME = "radio-ihd"
RADIO_DISPLAY_PROFILE = "silabs-ihd-drlc"  # registers with the ESI, confirms at once
RADIO_TIME_POLL_S = 5.0  # the display re-reads the ESI's time this often, as `hangw sim ncp` does
COORDINATOR_PROFILE = "emberznet-7.4-mg24"


@dataclass
class RoutedPremise:
    premise: SimPremise
    route: str  # multispeak | cim | binary | radio

    @property
    def via(self) -> str:
        """Which route this premise's answers come through, e.g. "MultiSpeak head-end (oncor)"."""
        if self.route == "radio":
            return ROUTE_NAMES[self.route]
        return f"{ROUTE_NAMES[self.route]} ({self.premise.tdsp})"


@dataclass
class DemoField:
    loaded: list[SimPremise]  # every premise the operator loads into the gateway
    chosen: list[RoutedPremise]  # one per route that runs: the premises the walkthrough sends to
    routes: dict[str, Any]  # the gateway's [routes] section
    device_names: dict[str, str]  # EUI-64 (printed form) -> firmware profile
    notes: list[str] = field(default_factory=list)  # one line per part left out, and why
    headends: list[HeadEnd] = field(default_factory=list)
    coordinator: NcpEmulator | None = None
    display: ClientDevice | None = None

    @property
    def radio(self) -> RoutedPremise:
        return next(p for p in self.chosen if p.route == "radio")

    async def close(self) -> None:
        for headend in self.headends:
            await headend.close()
        if self.coordinator is not None:
            await self.coordinator.close()


async def broker_running(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the MQTT broker's address."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _eui(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in reversed(raw))


async def start_demo_field(per_tdsp: int, clock: TimerClock, *, broker: tuple[str, int] = MQTT_BROKER) -> DemoField:
    """Start the head-ends and the coordinator; the caller starts the gateway with `routes`."""
    items = premises(per_tdsp)
    # The premise the walkthrough sends to at each TDSP: SE 1.1/1.2 meters (SE 1.0 has no price
    # acknowledgement) with a display and a load-control device that answer every step.
    for k, tdsp_first in enumerate(range(0, len(items), per_tdsp)):
        items[tdsp_first] = dataclasses.replace(items[tdsp_first], se_version=("1.1", "1.2")[k % 2],
                                                profiles=MIX[k % 3])
    demo = DemoField(loaded=[], chosen=[], routes={"kind": "adapters", "tdsp": {}}, device_names={})
    have_broker = await broker_running(*broker)
    topics = f"hangw-demo/{uuid.uuid4().hex[:8]}"
    left_out: list[str] = []
    try:
        for first in range(0, len(items), per_tdsp):
            tdsp_items = items[first:first + per_tdsp]
            tdsp = tdsp_items[0].tdsp
            profile = load_profile(tdsp)
            if profile.transport == "cim" and not have_broker:
                left_out.append(tdsp)
                continue
            field_, devices = build_field(clock, tdsp_items, first=first)
            for esi_devices in devices.values():
                for dev in esi_devices:
                    demo.device_names[_eui(dev.eui64)] = dev.profile.id
            headend = headend_for_profile(profile, field_, clock, mqtt_host=broker[0], mqtt_port=broker[1],
                                          topic_prefix=f"{topics}/{tdsp}")
            await headend.start()
            demo.headends.append(headend)
            demo.routes["tdsp"][tdsp] = _route_table(profile.transport, headend, broker, f"{topics}/{tdsp}")
            demo.loaded += tdsp_items
            demo.chosen.append(RoutedPremise(tdsp_items[0], profile.transport))
        if left_out:
            demo.notes.append(f"the IEC 61968-9 head-ends ({', '.join(left_out)}): no MQTT broker at "
                              f"{broker[0]}:{broker[1]} (start Mosquitto to include them)")
        await _start_radio(demo, items, per_tdsp)
    except BaseException:
        await demo.close()
        raise
    return demo


def _route_table(transport: str, headend: HeadEnd, broker: tuple[str, int], topic_prefix: str) -> dict[str, Any]:
    """`[routes.tdsp.<tdsp>]` for a head-end of `transport`, as docs/operator.md describes it."""
    if transport == "cim":
        return {"host": broker[0], "port": broker[1], "topic_prefix": topic_prefix,
                "client_id": f"hangw-demo-{uuid.uuid4().hex[:8]}"}
    port = headend.port  # type: ignore[attr-defined]
    if transport == "multispeak":
        return {"url": f"http://127.0.0.1:{port}"}
    return {"host": "127.0.0.1", "port": port}


async def _start_radio(demo: DemoField, items: list[SimPremise], per_tdsp: int) -> None:
    """The coordinator emulator on loopback TCP and one Oncor premise whose ESI is the gateway's radio."""
    coordinator = NcpEmulator(load_coordinator_profile(COORDINATOR_PROFILE))
    host, port = await coordinator.serve_tcp()
    demo.coordinator = coordinator
    oncor = items[0]
    esi_id = oncor.esi_id[:7] + str(per_tdsp + 1).rjust(len(oncor.esi_id) - 7, "0")
    premise = SimPremise(esi_id, "oncor", "SIM-RADIO", "1.1", (RADIO_DEVICE_NAME,))
    # In pairing mode: it joins when the coordinator permits joining with its install code's key.
    # On the wall clock, not the field's brisk one: it re-reads the time every 5 wall seconds and a
    # 1-minute event lasts a minute (the walkthrough waits for its 'received', not its 'completed').
    profile = dataclasses.replace(load_profiles()[RADIO_DISPLAY_PROFILE], time_poll_s=RADIO_TIME_POLL_S)
    demo.display = make_device(profile, eui64_from_str(RADIO_EUI64), parse_install_code(RADIO_INSTALL_CODE).code,
                               RealClock())
    coordinator.pair(demo.display)
    demo.device_names[RADIO_EUI64] = RADIO_DEVICE_NAME
    demo.routes["radio"] = {"device": f"socket://{host}:{port}", "esi_ids": [esi_id]}
    demo.loaded.append(premise)
    demo.chosen.append(RoutedPremise(premise, "radio"))
