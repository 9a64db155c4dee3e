"""The same meter and device code in wall time on an asyncio loop."""

from __future__ import annotations

import asyncio

from simulators.addressing import install_code_with_crc
from simulators.clock import RealClock
from simulators.factory import make_device
from simulators.meter import ALL_DEVICES, MeterEvent, RelayedFrame, SimMeter
from simulators.profiles import load_profiles
from zigbee_se import decode_frame, encode_frame


async def test_meter_and_thermostat_under_the_real_clock() -> None:
    clock = RealClock(seed=1)
    events: list[MeterEvent] = []
    meter = SimMeter("10443720000000009", clock, upstream=events.append, join_time_s=0.05)
    pct = make_device(load_profiles()["silabs-pct"], b"\x11" * 8,
                      install_code_with_crc(bytes(range(16))), clock)
    meter.initialize_han()
    meter.provision_device(pct.eui64, pct.install_code, join_window_s=60)
    meter.join(pct)
    await asyncio.sleep(0.1)
    assert pct.attached
    lce = encode_frame("drlc", "load_control_event", {
        "issuer_event_id": 5, "device_class": 1, "utility_enrollment_group": 0,
        "start_time": 0, "duration_in_minutes": 1, "criticality_level": 3}, tsn=7)
    assert meter.send(ALL_DEVICES, 0x0701, lce) == 1
    for _ in range(100):
        res = [decode_frame(e.cluster_id, e.frame) for e in events
               if isinstance(e, RelayedFrame) and e.cluster_id == 0x0701]
        if len(res) >= 2:
            break
        await asyncio.sleep(0.02)
    assert [(f.fields["issuer_event_id"], f.fields["event_status"]) for f in res] == [
        (5, 0x01), (5, 0x02)]
    assert res[0].tsn == 7
