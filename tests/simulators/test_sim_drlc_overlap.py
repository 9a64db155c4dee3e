"""DRLC overlap and Issuer Event IDs (issue 13, "Devices"): which of two overlapping load-control
events a device runs when the later-received one carries the *lower* Issuer Event ID.

Every status is read from the Report Event Status frames the meter relayed upstream, decoded with
zigbee_se, on the virtual clock.
"""

from __future__ import annotations

from typing import Any

from simulators.meter import ALL_DEVICES
from simulators.scenario import ScenarioPremise
from simulators.se_time import to_utc

STACKS = ["silabs-pct", "nxp-pct", "exegin-water-heater", "freescale-pct-se10"]


def lce(iid: int, start: float, minutes: int = 60, dc: int = 0x0005) -> dict[str, Any]:
    # Device classes 0x0005 (HVAC + water heater) reach every thermostat and the water heater.
    return {"issuer_event_id": iid, "device_class": dc, "utility_enrollment_group": 0,
            "start_time": to_utc(start), "duration_in_minutes": minutes, "criticality_level": 3,
            "event_control": 0}


def test_real_stacks_let_a_later_received_lower_id_replace_the_higher_one() -> None:
    """The reproduction: event 20 is scheduled; event 10 arrives later, overlaps it and starts
    later still. Silicon Labs and Freescale let the newest *received* event win, NXP the later
    *start*, and Exegin (overlap code not public) is modelled as Silicon Labs: in all four the
    older event 10 replaces the newer 20. These are the stacks' sourced behaviours and stay so."""
    p = ScenarioPremise.build(STACKS)
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(20, now + 3600))
    p.clock.advance(10)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(10, now + 5400))
    p.clock.advance(4 * 3600)
    for dev in p.devices:
        got = p.statuses(dev.eui64)
        if dev.profile.drlc_variant == "exegin":
            assert got[:2] == [(20, 0x01), (10, 0x01)], dev
            assert (20, 0x07) in got and (10, 0x02) in got, dev
            continue
        assert got == [(20, 0x01), (10, 0x01), (20, 0x07), (10, 0x02), (10, 0x03)], dev
