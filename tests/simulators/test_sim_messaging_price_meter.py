"""Messaging, price, meter (ESI) and misbehaving-profile scenarios on the virtual clock."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.addressing import install_code_with_crc
from simulators.errors import ProvisioningError
from simulators.factory import make_device
from simulators.han import MeterDeviceStatus
from simulators.meter import ALL_DEVICES, HanEvent, Reachability, RelayedFrame
from simulators.profiles import load_profiles
from simulators.scenario import ScenarioPremise
from simulators.se_time import to_utc
from zigbee_se import encode_frame

PROFILES = load_profiles()


def message(mid: int, text: str, *, control: int = 0x00, start: int = 0,
            minutes: int = 60) -> dict[str, Any]:
    return {"message_id": mid, "message_control": control, "start_time": start,
            "duration_in_minutes": minutes, "message": text}


def price(iid: int, *, control: int = 0, start: int = 0, minutes: int = 60,
          cents: int = 1234) -> dict[str, Any]:
    return {"provider_id": 77, "rate_label": "PEAK", "issuer_event_id": iid, "current_time": 0,
            "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 2, "price_tier": 1,
            "number_of_price_tiers": 1, "register_tier": 1, "start_time": start,
            "duration_in_minutes": minutes, "price": cents, "price_control": control}


def answers(p: ScenarioPremise, eui: bytes, command: str) -> list[tuple[float, Any]]:
    return [(t, f) for _, t, f in p.frames(eui) if f.command == command]


# ------------------------------------------------------------------------------- messaging
def test_message_shown_for_its_duration_and_confirmed_by_the_resident() -> None:
    p = ScenarioPremise.build(["silabs-ihd"])
    ihd = p.devices[0]
    p.send(ALL_DEVICES, "messaging", "display_message",
           message(0x1234, "Peak pricing 2-6pm", control=0x80, minutes=2))
    tsn = p.tsn
    t0 = p.clock.now()
    p.clock.advance(1)
    assert ihd.messaging.displayed_text == "Peak pricing 2-6pm"
    dr = answers(p, ihd.eui64, "default_response")
    assert [(f.tsn, f.fields["command_id"], f.fields["status"]) for _, f in dr] == [(tsn, 0, 0)]
    p.clock.advance(60)
    conf = answers(p, ihd.eui64, "message_confirmation")
    assert len(conf) == 1
    t_conf, f = conf[0]
    assert f.fields["message_id"] == 0x1234
    assert 30 <= t_conf - t0 <= 31  # the profile's resident confirms after 30 s
    assert abs(f.fields["confirmation_time"] - to_utc(t_conf)) <= 1
    p.clock.advance(120)
    assert ihd.messaging.displayed_text is None  # 2 minutes are over


def test_scheduled_until_changed_cancel_and_inter_pan_messages() -> None:
    p = ScenarioPremise.build(["silabs-ihd"])
    ihd = p.devices[0]
    start = p.clock.now() + 300
    p.send(ALL_DEVICES, "messaging", "display_message",
           message(1, "later", start=to_utc(start), minutes=0xFFFF))
    p.clock.advance(299)
    assert ihd.messaging.displayed_text is None
    p.clock.advance(2)
    assert ihd.messaging.displayed_text == "later"
    p.clock.advance(86400 * 3)
    assert ihd.messaging.displayed_text == "later"  # until changed
    p.send(ALL_DEVICES, "messaging", "cancel_message", {"message_id": 2, "message_control": 0})
    p.send(ALL_DEVICES, "messaging", "cancel_message", {"message_id": 1, "message_control": 0})
    p.send(ALL_DEVICES, "messaging", "display_message", message(3, "inter-pan", control=0x02))
    p.clock.advance(2)
    assert ihd.messaging.displayed_text is None
    statuses = [f.fields["status"] for _, f in answers(p, ihd.eui64, "default_response")]
    assert statuses == [0x00, 0x8B, 0x00, 0x85]  # shown, NOT_FOUND, cancelled, INVALID_FIELD


def test_budget_ihd_truncates_never_confirms_and_drops_a_share_of_frames() -> None:
    p = ScenarioPremise.build(["budget-ihd-lossy"])
    ihd = p.devices[0]
    text = "Demand response tomorrow 3-7pm: please pre-cool"
    delivered = 0
    dropped_before = ihd.dropped
    for mid in range(1, 101):
        p.send(ALL_DEVICES, "messaging", "display_message", message(mid, text, control=0x80))
        delivered += 1
        p.clock.advance(5)
    p.clock.advance(600)
    assert answers(p, ihd.eui64, "message_confirmation") == []
    answered = len(answers(p, ihd.eui64, "default_response"))
    dropped = ihd.dropped - dropped_before
    assert answered + dropped == delivered
    assert 8 <= dropped <= 35  # 20 % of 100, seeded
    assert ihd.messaging.displayed_text == text.encode()[:24].decode()


def test_text_limit_cuts_on_a_utf8_boundary() -> None:
    p = ScenarioPremise.build(["budget-ihd-lossy"], seed=5)
    ihd = p.devices[0]
    ihd.clock.rng.seed(12345)  # make sure this one frame is not among the dropped
    text = "Température élevée: réduisez"
    for mid in range(1, 6):
        p.send(ALL_DEVICES, "messaging", "display_message", message(mid, text))
        p.clock.advance(2)
        if ihd.messaging.displayed_text is not None:
            break
    shown = ihd.messaging.displayed_text
    assert shown is not None and len(shown.encode()) <= 24 and text.startswith(shown)


def test_ihd_asks_get_last_message_and_get_current_price_after_joining() -> None:
    p = ScenarioPremise.build(["silabs-ihd"], join=False)
    ihd = p.devices[0]
    p.send(ALL_DEVICES, "messaging", "display_message", message(5, "welcome", minutes=120))
    p.send(ALL_DEVICES, "price", "publish_price", price(9, minutes=120))
    assert p.meter.send(ALL_DEVICES, 0x0703, b"") == 0  # nobody joined yet
    p.meter.join(ihd)
    p.clock.advance(30)
    assert ihd.messaging.displayed_text == "welcome"
    cur = ihd.price.current()
    assert cur is not None and cur.issuer_event_id == 9 and cur.fields["price"] == 1234
    assert ihd.time_synced
    # The IHD read the meter: demand and summation as it shows them.
    assert ihd.shown_demand_w == p.meter.demand_w()


# ------------------------------------------------------------------------------- price
def test_price_acknowledgement_when_asked_default_response_otherwise() -> None:
    p = ScenarioPremise.build(["silabs-ihd", "freescale-pct-se10"])
    ihd, fsl = p.devices
    p.send(ALL_DEVICES, "price", "publish_price", price(100, control=0x01))
    ack_tsn = p.tsn
    p.send(ALL_DEVICES, "price", "publish_price", price(101, start=to_utc(p.clock.now() + 7200)))
    p.clock.advance(2)
    acks = answers(p, ihd.eui64, "price_acknowledgement")
    assert len(acks) == 1
    f = acks[0][1]
    assert f.tsn == ack_tsn
    assert (f.fields["provider_id"], f.fields["issuer_event_id"], f.fields["control"]) == (
        77, 100, 0x01)
    assert [x.fields["status"] for _, x in answers(p, ihd.eui64, "default_response")] == [0x00]
    # The SE 1.0 thermostat cannot parse the SE 1.1 trailing fields.
    assert [x.fields["status"] for _, x in answers(p, fsl.eui64, "default_response")] == [
        0x80, 0x80]
    assert fsl.price.prices == []
    # ...but takes an SE 1.0 frame.
    p.send(ALL_DEVICES, "price", "publish_price",
           {k: v for k, v in price(102).items() if k != "price_control"}, se_version="1.0")
    p.clock.advance(2)
    assert answers(p, fsl.eui64, "default_response")[-1][1].fields["status"] == 0x00
    assert fsl.price.current().issuer_event_id == 102


def test_price_table_rules_duplicates_older_and_expired() -> None:
    p = ScenarioPremise.build(["silabs-ihd"])
    ihd = p.devices[0]
    p.send(ALL_DEVICES, "price", "publish_price", price(200))
    p.send(ALL_DEVICES, "price", "publish_price", price(200))  # duplicate
    p.send(ALL_DEVICES, "price", "publish_price", price(150))  # older id overlapping a newer
    p.send(ALL_DEVICES, "price", "publish_price",
           price(300, start=to_utc(p.clock.now() - 7200), minutes=60))  # already ended
    p.clock.advance(2)
    statuses = [f.fields["status"] for _, f in answers(p, ihd.eui64, "default_response")]
    assert statuses == [0x00, 0x8A, 0x01, 0x01]
    later = p.clock.now() + 1800
    p.send(ALL_DEVICES, "price", "publish_price", price(201, start=to_utc(later)))
    p.clock.advance(2)
    assert [x.issuer_event_id for x in ihd.price.prices] == [200, 201]
    assert ihd.price.prices[0].end == later  # the running price is truncated
    ihd.price.get_scheduled_prices()
    p.clock.advance(5)
    assert [x.issuer_event_id for x in ihd.price.prices] == [200, 201]


# ------------------------------------------------------------------------------- meter
def test_join_fails_with_a_wrong_install_code_or_an_expired_window() -> None:
    p = ScenarioPremise.build([], join=False)
    prof = PROFILES["silabs-pct"]
    good = install_code_with_crc(bytes(range(16)))
    wrong = install_code_with_crc(bytes(range(1, 17)))
    a = make_device(prof, b"\x01" * 8, wrong, p.clock)
    b = make_device(prof, b"\x02" * 8, good, p.clock)
    c = make_device(prof, b"\x03" * 8, good, p.clock)
    p.meter.provision_device(a.eui64, good, join_window_s=600)
    p.meter.provision_device(b.eui64, good, join_window_s=600)
    p.meter.join(a)
    p.meter.join(c)
    p.clock.advance(700)
    p.meter.join(b)
    p.clock.advance(5)
    assert [e for e in p.han_events() if e[1] != "provisioned"] == [
        (b"\x01" * 8, "find_pending", None),
        (b"\x03" * 8, "join_failed", "not_provisioned"),
        (b"\x01" * 8, "join_failed", "link_key_mismatch"),
        (b"\x02" * 8, "join_failed", "join_window_expired"),
    ]
    assert p.meter.device_status(a.eui64) == MeterDeviceStatus.FAILED


def test_device_limits_and_removal() -> None:
    p = ScenarioPremise.build(["silabs-ihd"] * 5)
    assert len(p.meter.devices) == 5
    with pytest.raises(ProvisioningError, match="at most 5"):
        p.meter.provision_device(b"\x09" * 8, install_code_with_crc(bytes(16)))
    gone = p.devices[0]
    p.meter.delete_device(gone.eui64)
    assert not gone.attached
    p.meter.clear_devices()
    assert p.meter.devices == {}
    p.meter.decommission_han()
    with pytest.raises(ProvisioningError, match="HAN initialization required first"):
        p.meter.provision_device(b"\x09" * 8, install_code_with_crc(bytes(16)))
    kinds = [k for _, k, _ in p.han_events()]
    assert kinds == ["deleted", "cleared", "decommissioned"]


def test_unreachable_meter_loses_frames_and_reports_reachability() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    p.meter.unreachable_for(30 * 86400)  # a month dark
    assert p.send(ALL_DEVICES, "drlc", "load_control_event",
                  {"issuer_event_id": 1, "device_class": 1, "start_time": 0,
                   "duration_in_minutes": 10, "criticality_level": 3}) == 0
    with pytest.raises(ProvisioningError, match="unreachable"):
        p.meter.initialize_han()
    p.clock.advance(30 * 86400 + 1)
    assert p.meter.frames_lost == 1
    assert [type(e) for e in p.events] == [Reachability, Reachability]
    assert [e.reachable for e in p.events if isinstance(e, Reachability)] == [False, True]
    assert p.statuses() == []
    p.send(ALL_DEVICES, "drlc", "load_control_event",
           {"issuer_event_id": 2, "device_class": 1, "start_time": 0,
            "duration_in_minutes": 10, "criticality_level": 3})
    p.clock.advance(2)
    assert p.statuses() == [(2, 0x01), (2, 0x02)]


def test_esi_answers_get_scheduled_events_with_start_now_remaining_duration() -> None:
    p = ScenarioPremise.build(["silabs-pct"], join=False)
    p.send(ALL_DEVICES, "drlc", "load_control_event",
           {"issuer_event_id": 3, "device_class": 1, "start_time": 0,
            "duration_in_minutes": 60, "criticality_level": 3})
    end = p.clock.now() + 3600
    p.clock.advance(1200)  # 20 of the 60 minutes have run
    pct = p.devices[0]
    p.meter.join(pct)
    p.clock.advance(30)
    events = pct.drlc.snapshot()
    assert len(events) == 1 and events[0]["state"] == "active"
    # Start 0 and the remaining whole minutes, rounded down: it ends within a minute before the
    # real end, never after it (the device's clock was set from the ESI's, to the second).
    assert end - 60 < events[0]["effective_end"] <= end


def test_drifting_clock_shows_in_event_status_times() -> None:
    p = ScenarioPremise.build(["drifting-pct", "silabs-pct"])
    drift, ok = p.devices
    p.clock.advance(86400)  # a day after the time sync: 2,000 ppm = 172.8 s fast
    p.send(ALL_DEVICES, "drlc", "load_control_event",
           {"issuer_event_id": 4, "device_class": 1, "start_time": 0,
            "duration_in_minutes": 10, "criticality_level": 3})
    p.clock.advance(2)
    t_drift = next(f for _, _, f in p.frames(drift.eui64)).fields["event_status_time"]
    t_ok = next(f for _, _, f in p.frames(ok.eui64)).fields["event_status_time"]
    assert 170 <= t_drift - t_ok <= 175


def test_undecodable_and_unknown_frames_from_upstream() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    assert p.meter.send(ALL_DEVICES, 0x0701, b"\x09\x01") == 1  # forwarded, not understood
    p.clock.advance(2)
    assert p.devices[0].undecodable == 1
    assert p.events == []  # not even a header: silence
    lce = encode_frame(0x0701, "load_control_event", {
        "issuer_event_id": 1, "device_class": 1, "start_time": 0, "duration_in_minutes": 5,
        "criticality_level": 3}, tsn=33)
    p.meter.send(ALL_DEVICES, 0x0701, lce[:20])  # an LCE cut short: MALFORMED_COMMAND
    p.clock.advance(2)
    (_, _, dr), = p.frames()
    assert (dr.command, dr.tsn, dr.fields["command_id"], dr.fields["status"]) == (
        "default_response", 33, 0x00, 0x80)
    p.events.clear()
    frame = encode_frame(0x0703, "display_message", message(1, "hi"), tsn=9)
    p.meter.send(p.devices[0].eui64, 0x0703, frame)  # the PCT has a messaging client
    p.clock.advance(2)
    ups = [e for e in p.events if isinstance(e, RelayedFrame)]
    assert len(ups) == 1
    assert not [e for e in p.events if isinstance(e, HanEvent)]


def test_se12_enhanced_confirmation_carries_the_answer() -> None:
    from simulators.profiles import profile_from_dict

    prof = profile_from_dict({
        "id": "ihd-12", "vendor": "v", "model": "m", "firmware_version": "1", "se_version": "1.2",
        "device_type": "ihd", "clusters": ["messaging"], "quirks": {"never_confirm": True}})
    p = ScenarioPremise.build(["ihd-12"], profiles={"ihd-12": prof})
    ihd = p.devices[0]
    p.send(ALL_DEVICES, "messaging", "display_message",
           message(7, "Accept the offer?", control=0xA0), se_version="1.2")
    p.clock.advance(2)
    assert ihd.confirm_message(yes=False, response="no thanks")
    p.clock.advance(2)
    (_, f), = answers(p, ihd.eui64, "message_confirmation")
    assert f.fields["message_confirmation_control"] == 0x01
    assert f.fields["message_response"] == "no thanks"


def test_load_control_device_average_load_adjustment_lowers_demand() -> None:
    p = ScenarioPremise.build(["silabs-pool-pump"])
    pump = p.devices[0]
    before = p.meter.demand_w()
    p.send(ALL_DEVICES, "drlc", "load_control_event", {
        "issuer_event_id": 5, "device_class": 0x0008, "utility_enrollment_group": 5,
        "start_time": 0, "duration_in_minutes": 30, "criticality_level": 2,
        "average_load_adjustment_percentage": -40})
    p.clock.advance(5)
    assert pump.relay_on and pump.load_adjustment == -40
    assert p.meter.demand_w() == before - 0.4 * pump.profile.nominal_load_w
    res = [f for _, _, f in p.frames() if f.command == "report_event_status"]
    assert res[-1].fields["average_load_adjustment_percentage_applied"] == -40


def test_a_device_behind_any_uplink_speaks_only_bytes() -> None:
    from simulators.clock import VirtualClock
    from zigbee_se import decode_frame

    clock = VirtualClock(seed=3)
    ihd = make_device(PROFILES["silabs-ihd"], b"\x21" * 8, install_code_with_crc(bytes(8)), clock)
    sent: list[tuple[int, bytes]] = []
    ihd.attach(lambda cluster, frame: sent.append((cluster, frame)))  # e.g. a coordinator
    ihd.on_joined()
    clock.advance(10)
    assert [decode_frame(c, f).command for c, f in sent] == [
        "read_attributes", "get_last_message", "get_current_price", "read_attributes"]
    sent.clear()
    ihd.deliver(0x0703, encode_frame("messaging", "display_message", message(1, "hi"), tsn=4))
    clock.advance(1)
    (cluster, frame), = sent
    assert cluster == 0x0703 and decode_frame(cluster, frame).fields == {"command_id": 0,
                                                                         "status": 0}


def test_publish_block_period_stored_silently_by_silabs_acknowledged_by_nxp() -> None:
    p = ScenarioPremise.build(["silabs-ihd", "nxp-pct"])
    ihd, nxp = p.devices
    p.send(ALL_DEVICES, "price", "publish_block_period", {
        "provider_id": 77, "issuer_event_id": 500, "block_period_start_time": 0,
        "block_period_duration": 60, "number_of_price_tiers": 2,
        "number_of_block_thresholds": 3, "block_period_control": 0x01})
    tsn = p.tsn
    p.clock.advance(2)
    assert p.frames(ihd.eui64) == []
    assert ihd.price.block_periods is not None and (77, 500) in ihd.price.block_periods
    (_, f), = answers(p, nxp.eui64, "price_acknowledgement")
    assert (f.tsn, f.fields["issuer_event_id"], f.fields["control"]) == (tsn, 500, 0x01)
