"""DRLC scenarios on the virtual clock: the exact Report Event Status frames devices send back.

Every frame is decoded with zigbee_se from the bytes the meter relayed upstream.
"""

from __future__ import annotations

from typing import Any

from simulators.meter import ALL_DEVICES, METER
from simulators.scenario import ScenarioPremise
from simulators.se_time import to_utc


def lce(iid: int, *, start: float | int = 0, minutes: int = 30, dc: int = 0x0001, ueg: int = 0,
        crit: int = 3, ctl: int = 0, **extra: Any) -> dict[str, Any]:
    return {"issuer_event_id": iid, "device_class": dc, "utility_enrollment_group": ueg,
            "start_time": start if isinstance(start, int) else to_utc(start),
            "duration_in_minutes": minutes, "criticality_level": crit, "event_control": ctl,
            **extra}


def res_frames(p: ScenarioPremise, eui: bytes | None = None) -> list[tuple[float, Any]]:
    return [(t, f) for _, t, f in p.frames(eui) if f.command == "report_event_status"]


def test_start_now_event_runs_reports_and_moves_the_set_point() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    pct = p.devices[0]
    t0 = p.clock.now()
    assert p.send(ALL_DEVICES, "drlc", "load_control_event",
                  lce(7, minutes=30, cooling_temperature_offset=20)) == 1
    lce_tsn = p.tsn
    p.clock.advance(5)
    assert pct.cooling_set_point == 2600  # 24.00 °C + 2.0 °C offset
    p.clock.advance(1800)
    assert pct.cooling_set_point == 2400
    frames = res_frames(p)
    assert [(f.fields["issuer_event_id"], f.fields["event_status"]) for _, f in frames] == [
        (7, 0x01), (7, 0x02), (7, 0x03)]
    received, started, completed = (f for _, f in frames)
    assert received.tsn == lce_tsn  # the receipt RES answers the LCE with its TSN (SL)
    assert received.fields["criticality_level_applied"] == 3
    assert received.fields["signature_type"] == 0 and received.fields["signature"] == b"\xff" * 42
    assert abs(started.fields["event_status_time"] - to_utc(t0)) <= 2
    ran = completed.fields["event_status_time"] - started.fields["event_status_time"]
    assert 1799 <= ran <= 1801


def test_scheduled_event_starts_on_time_and_lowers_metered_demand() -> None:
    p = ScenarioPremise.build(["silabs-pct", "silabs-ihd"])
    start = p.clock.now() + 600
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(11, start=start, minutes=60))
    p.clock.advance(599)
    assert p.statuses() == [(11, 0x01)]  # the IHD has no DRLC client: nothing from it
    before = p.meter.demand_w()
    p.clock.advance(2)
    assert p.statuses() == [(11, 0x01), (11, 0x02)]
    during = p.meter.demand_w()
    assert during < before - 1000  # the compressor is curtailed
    # The same figure through a Metering Read Attributes to the meter itself.
    p.send(METER, "metering", "read_attributes", {"attribute_ids": [0x0000, 0x0400]})
    reply = [f for _, _, f in p.frames() if f.command == "read_attributes_response"][-1]
    values = {r["attribute_id"]: r["value"] for r in reply.fields["records"]}
    assert values[0x0400] == int(during)
    summation_then = values[0x0000]
    p.clock.advance(3600)
    assert p.statuses()[-1] == (11, 0x03)
    assert p.meter.demand_w() == before
    assert p.meter.register_read().delivered_wh > summation_then  # the register (the usage model) moved on


def test_newer_overlapping_event_supersedes_a_scheduled_one_silabs() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(1, start=now + 3600, minutes=60))
    p.clock.advance(10)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(2, start=now + 5400, minutes=60))
    t_sent = p.clock.now()
    p.clock.advance(3 * 3600)
    frames = res_frames(p)
    got = [(f.fields["issuer_event_id"], f.fields["event_status"]) for _, f in frames]
    assert got == [(1, 0x01), (2, 0x01), (1, 0x07), (2, 0x02), (2, 0x03)]
    superseded_at = frames[2][0]
    assert 1.0 <= superseded_at - t_sent <= 1.5  # SL: on the next 1 s tick after 0x01


def test_running_event_superseded_one_second_before_the_new_start_silabs() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(1, minutes=120))
    p.clock.advance(60)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(2, start=now + 1800, minutes=30))
    p.clock.advance(7200)
    frames = res_frames(p)
    got = [(f.fields["issuer_event_id"], f.fields["event_status"]) for _, f in frames]
    assert got == [(1, 0x01), (1, 0x02), (2, 0x01), (1, 0x07), (2, 0x02), (2, 0x03)]
    t07, t02 = frames[3][0], frames[4][0]
    assert abs((t02 - t07) - 1.0) < 0.01


def test_nxp_rejects_an_earlier_overlapping_event_and_ignores_other_groups() -> None:
    p = ScenarioPremise.build(["nxp-pct", "silabs-pct"])
    nxp, sl = (d.eui64 for d in p.devices)
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(5, start=now + 7200, minutes=60))
    p.clock.advance(5)
    # Overlaps event 5 but starts earlier: NXP keeps the later one and rejects the new event.
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(6, start=now + 6000, minutes=60))
    p.clock.advance(5)
    assert p.statuses(nxp) == [(5, 0x01), (6, 0xFE)]
    assert p.statuses(sl) == [(5, 0x01), (6, 0x01), (5, 0x07)]
    # Enrollment group 5: SL's device UEG 0 means "all groups", NXP's means group 0 only.
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(9, start=now + 20000, ueg=5))
    p.clock.advance(5)
    assert p.statuses(nxp)[-1] == (6, 0xFE)
    assert p.statuses(sl)[-1] == (9, 0x01)


def test_start_and_duration_randomization_stay_within_the_attributes() -> None:
    delays, lengths = set(), set()
    for seed in range(12):
        p = ScenarioPremise.build(["silabs-pool-pump"], seed=seed)  # 1 min start and duration rand
        start = p.clock.now() + 300
        p.send(ALL_DEVICES, "drlc", "load_control_event",
               lce(3, start=start, minutes=10, dc=0x0008, ctl=0x03))
        p.clock.advance(2000)
        frames = res_frames(p)
        assert [f.fields["event_status"] for _, f in frames] == [0x01, 0x02, 0x03]
        t_start, t_end = frames[1][0], frames[2][0]
        delay = t_start - start
        assert 0 <= delay < 60 + 0.5  # SL: seconds in [0, 60), plus the answer delay
        length = t_end - t_start
        assert 600 <= length < 660 + 0.01
        delays.add(round(delay))
        lengths.add(round(length))
    assert len(delays) > 3 and len(lengths) > 3  # really randomized


def test_nxp_randomizes_in_whole_minutes() -> None:
    seen = set()
    for seed in range(15):
        p = ScenarioPremise.build(["nxp-pct"], seed=seed)  # start randomization 2 min
        start = p.clock.now() + 300
        p.send(ALL_DEVICES, "drlc", "load_control_event", lce(4, start=start, ctl=0x01))
        p.clock.advance(1000)
        t_start = res_frames(p)[1][0]
        seen.add(round(t_start - start - p.devices[0].profile.answer_delay_s - 0.02))
    assert seen <= {0, 60, 120} and len(seen) >= 2


def test_opt_out_mid_event_then_back_in() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(8, minutes=60))
    p.clock.advance(600)
    pct = p.devices[0]
    assert pct.load_w == 0.0
    assert pct.opt_out(8)
    p.clock.advance(1)
    assert pct.load_w > 0  # back to normal while opted out
    p.clock.advance(600)
    assert pct.opt_in(8)
    p.clock.advance(3600)
    assert p.statuses() == [(8, 0x01), (8, 0x02), (8, 0x04), (8, 0x05), (8, 0x09)]


def test_opt_out_mid_event_to_the_end_is_partially_completed() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(8, minutes=30))
    p.clock.advance(60)
    p.devices[0].opt_out(8)
    p.clock.advance(3600)
    assert p.statuses() == [(8, 0x01), (8, 0x02), (8, 0x04), (8, 0x08)]


def test_opt_out_before_start_per_stack() -> None:
    p = ScenarioPremise.build(["silabs-pct", "nxp-pct", "freescale-pct-se10"])
    sl, nxp, fsl = (d.eui64 for d in p.devices)
    start = p.clock.now() + 600
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(12, start=start, minutes=10))
    p.clock.advance(10)
    for d in p.devices:
        assert d.opt_out(12)
    p.clock.advance(5)
    assert p.statuses(sl) == [(12, 0x01), (12, 0x04)]  # SL's precedence bug: at once
    assert p.statuses(nxp) == [(12, 0x01)]  # stored silently
    assert p.statuses(fsl) == [(12, 0x01)]
    p.clock.advance(2000)
    assert p.statuses(sl) == [(12, 0x01), (12, 0x04), (12, 0x04), (12, 0x0A)]
    assert p.statuses(nxp) == [(12, 0x01), (12, 0x04), (12, 0x0A)]
    assert p.statuses(fsl) == [(12, 0x01), (12, 0x0A), (12, 0x08)]  # FSL: 0x0A at start


def test_cancel_with_past_effective_time_late_effective_time_and_unknown_event() -> None:
    p = ScenarioPremise.build(["silabs-pct", "nxp-pct", "exegin-water-heater"])
    sl, nxp, exg = (d.eui64 for d in p.devices)
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(20, minutes=60, dc=0x0007))
    p.clock.advance(300)
    cancel = {"issuer_event_id": 20, "device_class": 0x0007, "utility_enrollment_group": 0,
              "cancel_control": 0}
    # Effective time after the event's end: rejected (SL 0xF9, NXP 0xF8).
    p.send(ALL_DEVICES, "drlc", "cancel_load_control_event",
           dict(cancel, effective_time=to_utc(now + 7200)))
    p.clock.advance(5)
    assert p.statuses(sl)[-1] == (20, 0xF9)
    assert p.statuses(nxp)[-1] == (20, 0xF8)
    # Exegin refuses any non-zero effective time with Default Response UNSUPPORTED_ATTRIBUTE.
    dr = [f for _, _, f in p.frames(exg) if f.command == "default_response"]
    assert [(f.fields["command_id"], f.fields["status"]) for f in dr] == [(0x01, 0x86)]
    # An effective time in the past (but before the end): cancelled now.
    p.send(ALL_DEVICES, "drlc", "cancel_load_control_event",
           dict(cancel, device_class=0x0003, effective_time=to_utc(now + 60)))
    p.clock.advance(5)
    assert p.statuses(sl)[-1] == (20, 0x06)
    assert p.statuses(nxp)[-1] == (20, 0x06)
    assert p.devices[0].cooling_set_point == 2400
    # Unknown event: 0xFD (Exegin: 0xFE).
    p.send(ALL_DEVICES, "drlc", "cancel_load_control_event",
           dict(cancel, issuer_event_id=999, effective_time=0))
    p.clock.advance(5)
    assert p.statuses(sl)[-1] == (999, 0xFD)
    assert p.statuses(exg)[-1] == (999, 0xFE)
    p.clock.advance(7200)
    assert (20, 0x03) not in p.statuses(sl)  # a cancelled event never completes


def test_event_received_after_it_expired() -> None:
    p = ScenarioPremise.build(["silabs-pct", "freescale-pct-se10"])
    sl, fsl = (d.eui64 for d in p.devices)
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(30, start=now - 7200, minutes=60))
    p.clock.advance(5)
    assert p.statuses(sl) == [(30, 0xFB)]
    assert p.statuses(fsl) == [(30, 0xFB)]
    # FSL counts "end == now" as expired; SL only "end < now". Device clocks count whole
    # seconds and lag the meter by less than 0.6 s after their time sync: arrive in second t.
    t = int(p.clock.now()) + 10
    p.clock.run_until(t + 0.6)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(31, start=float(t - 600), minutes=10))
    p.clock.advance(1.0)
    assert p.statuses(fsl)[-1] == (31, 0xFB)
    assert (31, 0x01) in p.statuses(sl)  # SL accepts it (and it ends at once)


def test_late_start_event_ends_at_its_original_end_silabs_but_late_on_nxp() -> None:
    p = ScenarioPremise.build(["silabs-pct", "nxp-pct"])
    sl, nxp = (d.eui64 for d in p.devices)
    start = p.clock.now() - 600
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(40, start=start, minutes=20))
    p.clock.advance(3600)
    end_sl = res_frames(p, sl)[-1]
    end_nxp = res_frames(p, nxp)[-1]
    assert end_sl[1].fields["event_status"] == 0x03
    assert abs(end_sl[0] - (start + 1200)) < 1
    assert abs(end_nxp[0] - (start + 600 + 1200)) < 1


def test_cancel_all_per_stack() -> None:
    p = ScenarioPremise.build(["silabs-pct", "nxp-pct"])
    sl, nxp = (d.eui64 for d in p.devices)
    # No events: SL answers Default Response SUCCESS, NXP RES 0xF8 with issuer event id 0.
    p.send(ALL_DEVICES, "drlc", "cancel_all_load_control_events", {"cancel_control": 0})
    p.clock.advance(5)
    dr = [f for _, _, f in p.frames(sl) if f.command == "default_response"]
    assert [(f.fields["command_id"], f.fields["status"]) for f in dr] == [(0x02, 0x00)]
    assert p.statuses(nxp) == [(0, 0xF8)]
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(50, minutes=60, dc=3))
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(51, start=now + 7200, minutes=60, dc=3))
    p.clock.advance(30)
    t = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "cancel_all_load_control_events", {"cancel_control": 0})
    p.clock.advance(10)
    sl_res = [(ts, f.fields["issuer_event_id"], f.fields["event_status"])
              for ts, f in res_frames(p, sl) if ts > t]
    assert [(i, s) for _, i, s in sl_res] == [(50, 0x06), (51, 0x06)]
    assert abs((sl_res[1][0] - sl_res[0][0]) - 1.0) < 0.01  # one per 1 s tick
    assert sorted(s for s in p.statuses(nxp) if s[1] == 0x06) == [(50, 0x06), (51, 0x06)]


def test_duplicate_event_silent_on_silabs_answered_again_by_exegin() -> None:
    p = ScenarioPremise.build(["silabs-pct", "exegin-water-heater"])
    sl, exg = (d.eui64 for d in p.devices)
    start = p.clock.now() + 3600
    for _ in range(2):
        p.send(ALL_DEVICES, "drlc", "load_control_event", lce(60, start=start, dc=0x0005))
        p.clock.advance(5)
    assert p.statuses(sl) == [(60, 0x01)]
    assert p.statuses(exg) == [(60, 0x01), (60, 0x01)]


def test_device_class_and_group_filtering_by_the_meter_and_devices() -> None:
    p = ScenarioPremise.build(["silabs-pct", "exegin-water-heater", "silabs-pool-pump"], enhanced=True)
    pct, wh, pump = (d.eui64 for d in p.devices)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(70, dc=0x0004, minutes=10))
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(71, dc=0x0008, ueg=7, minutes=10))
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(72, dc=0x0008, ueg=5, minutes=10))
    p.clock.advance(5)
    assert p.statuses(pct) == []
    assert p.statuses(wh) == [(70, 0x01), (70, 0x02)]
    assert p.statuses(pump) == [(72, 0x01), (72, 0x02)]
    assert p.devices[1].relay_on is False and p.devices[2].relay_on is False


def test_exegin_report_event_status_has_no_signature_and_not_used_values() -> None:
    p = ScenarioPremise.build(["exegin-water-heater"])
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(80, dc=0x0004, duty_cycle=40))
    p.clock.advance(5)
    raw = [e for e in p.events if getattr(e, "cluster_id", None) == 0x0701]
    assert len(raw[0].frame) == 3 + 18  # header + 18-byte payload
    f = res_frames(p)[0][1]
    assert "signature" not in f.fields
    assert f.fields["duty_cycle_applied"] == 0xFF and f.fields["event_control"] == 0
    assert f.disable_default_response
    assert p.devices[0].load_w == 0.4 * p.devices[0].profile.nominal_load_w


def test_refused_mandatory_opt_out_and_event_pulled_after_join() -> None:
    p = ScenarioPremise.build(["silabs-pool-pump", "silabs-pct"], join=False)
    pump, pct = p.devices
    p.meter.join(pump)
    p.clock.advance(60)
    p.send(ALL_DEVICES, "drlc", "load_control_event",
           lce(90, dc=0x0009, crit=7, minutes=120))
    p.clock.advance(120)
    assert not pump.opt_out(90)  # emergency: this profile refuses the opt-out (SE 1.1: no RES)
    # The thermostat joins late and pulls the running event with GetScheduledEvents.
    p.meter.join(pct)
    p.clock.advance(60)
    assert p.statuses(pct.eui64) == [(90, 0x01), (90, 0x02)]
    assert p.statuses(pump.eui64)[-1] == (90, 0x02)


def test_cancel_with_randomization_silabs_including_the_nonzero_effective_time_quirk() -> None:
    for seed in range(4):
        p = ScenarioPremise.build(["silabs-pool-pump"], seed=seed)  # 1 min start/duration randomization
        p.send(ALL_DEVICES, "drlc", "load_control_event",
               lce(1, minutes=60, dc=0x0008, ctl=0x03))
        p.send(ALL_DEVICES, "drlc", "load_control_event",
               lce(2, start=p.clock.now() + 7200, minutes=60, dc=0x0008, ctl=0x03))
        p.clock.advance(300)
        t = p.clock.now()
        cancel = {"device_class": 0x0008, "utility_enrollment_group": 0, "cancel_control": 0x01}
        p.send(ALL_DEVICES, "drlc", "cancel_load_control_event",
               dict(cancel, issuer_event_id=1, effective_time=0))
        # SL computes "0 + randomization" for a non-zero effective time: it cancels at once.
        p.send(ALL_DEVICES, "drlc", "cancel_load_control_event",
               dict(cancel, issuer_event_id=2, effective_time=to_utc(t + 3600)))
        p.clock.advance(120)
        cancelled = {f.fields["issuer_event_id"]: ts - t for ts, f in res_frames(p)
                     if f.fields["event_status"] == 0x06}
        assert 1.0 <= cancelled[2] <= 1.5
        assert 1.0 <= cancelled[1] <= 61.5  # now + the event's randomization (< 60 s)


def test_running_event_superseded_when_the_new_one_starts_nxp_and_freescale() -> None:
    p = ScenarioPremise.build(["nxp-pct", "freescale-pct-se10"])
    nxp, fsl = (d.eui64 for d in p.devices)
    now = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(1, minutes=120))
    p.clock.advance(60)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(2, start=now + 1800, minutes=30))
    p.clock.advance(7200)
    for eui in (nxp, fsl):
        frames = res_frames(p, eui)
        got = [(f.fields["issuer_event_id"], f.fields["event_status"]) for _, f in frames]
        assert got == [(1, 0x01), (1, 0x02), (2, 0x01), (1, 0x07), (2, 0x02), (2, 0x03)]
        assert frames[3][0] == frames[4][0]  # 0x07 and the new 0x02 at the new event's start


def test_drlc_client_attributes_readable_through_the_meter() -> None:
    from zigbee_se import Direction, encode_frame

    p = ScenarioPremise.build(["silabs-pool-pump"])
    pump = p.devices[0]
    frame = encode_frame("drlc", "read_attributes", {"attribute_ids": [0, 1, 2, 3, 9]}, tsn=44,
                         direction=Direction.SERVER_TO_CLIENT)
    assert p.meter.send(pump.eui64, 0x0701, frame) == 1
    p.clock.advance(2)
    (_, _, f), = p.frames()
    assert f.command == "read_attributes_response" and f.tsn == 44
    assert [(r["attribute_id"], r["status"], r.get("value")) for r in f.fields["records"]] == [
        (0, 0, 5), (1, 0, 1), (2, 0, 1), (3, 0, 0x0008), (9, 0x86, None)]
