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


def test_spec_default_rejects_a_later_received_lower_id_and_keeps_the_newer_event() -> None:
    """SE rule (docs/simulators.md "Overlapping events"): the Issuer Event ID says which event is
    newer; an overlapping event older than one the device holds is refused with RES 0xFE and the
    newer event runs untouched."""
    p = ScenarioPremise.build(["spec-pct", "silabs-pct"])
    spec, sl = (d.eui64 for d in p.devices)
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(20, now + 3600))
    p.clock.advance(10)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(10, now + 5400))
    p.clock.advance(5)
    assert p.statuses(spec) == [(20, 0x01), (10, 0xFE)]
    assert p.statuses(sl) == [(20, 0x01), (10, 0x01), (20, 0x07)]
    rejected = [f for _, _, f in p.frames(spec) if f.command == "report_event_status"][1]
    assert rejected.tsn == p.tsn  # the rejection answers the LCE with its TSN
    p.clock.advance(4 * 3600)
    assert p.statuses(spec) == [(20, 0x01), (10, 0xFE), (20, 0x02), (20, 0x03)]
    assert [s for s in p.statuses(spec) if s[0] == 10] == [(10, 0xFE)]


def test_spec_default_lets_a_higher_id_supersede_and_ignores_ids_of_events_that_do_not_overlap() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(20, now + 3600))
    p.clock.advance(10)
    # Lower id but no overlap (it ends exactly where 20 starts): both are kept.
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(5, now + 1800, minutes=30))
    p.clock.advance(10)
    # Higher id, overlapping 20: it supersedes 20 (0x07 on the next 1 s tick, as SL).
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(30, now + 4000))
    p.clock.advance(10)
    assert p.statuses() == [(20, 0x01), (5, 0x01), (30, 0x01), (20, 0x07)]
    p.clock.advance(3 * 3600)
    assert p.statuses()[4:] == [(5, 0x02), (5, 0x03), (30, 0x02), (30, 0x03)]


def test_spec_default_refuses_a_lower_id_against_a_running_event_too() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(40, now + 60, minutes=30))
    p.clock.advance(120)
    assert p.statuses() == [(40, 0x01), (40, 0x02)]
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(39, p.clock.now() + 600, minutes=30))
    p.clock.advance(3600)
    assert p.statuses() == [(40, 0x01), (40, 0x02), (39, 0xFE), (40, 0x03)]


def test_spec_default_drops_silabs_other_known_deviations() -> None:
    """The spec variant is Silicon Labs without its two known bugs: no RES for an opt-out before
    the start (SL's own comment says SE 1.0/1.1 forbid it), and a randomized cancel with a
    non-zero effective time waits for that time (SL computes it from time 0: at once)."""
    p = ScenarioPremise.build(["spec-pct", "silabs-pct"])
    spec, sl = (d.eui64 for d in p.devices)
    t = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(12, t + 600, minutes=10))
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(13, t + 7200))
    p.clock.advance(10)
    for d in p.devices:
        assert d.opt_out(12)
    p.clock.advance(5)
    assert p.statuses(spec) == [(12, 0x01), (13, 0x01)]
    assert p.statuses(sl) == [(12, 0x01), (13, 0x01), (12, 0x04)]
    p.send(ALL_DEVICES, "drlc", "cancel_load_control_event", {
        "issuer_event_id": 13, "device_class": 0x0001, "utility_enrollment_group": 0,
        "cancel_control": 0x01, "effective_time": to_utc(t + 3600)})
    p.clock.advance(2 * 3600)
    assert p.statuses(spec) == [(12, 0x01), (13, 0x01), (12, 0x04), (12, 0x0A), (13, 0x06)]
    cancelled = [ts for _, ts, f in p.frames(spec)
                 if f.command == "report_event_status" and f.fields["event_status"] == 0x06]
    assert 3600 <= cancelled[0] - t <= 3601
    sl_cancel = [ts for _, ts, f in p.frames(sl)
                 if f.command == "report_event_status" and f.fields["event_status"] == 0x06]
    assert sl_cancel[0] - t < 60  # SL: at once
