"""zigbee_se.esi, the ESI's SE server rules, on its own: plain values and frames, a number for a clock."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zigbee_se import EventStatus, TimeStatus, decode_frame, encode_frame, utc_from_unix
from zigbee_se.esi import ESI_TIME_STATUS, Esi, EsiTables, time_attributes

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DRLC, PRICE, MESSAGING, TIME = 0x0701, 0x0700, 0x0703, 0x000A


def lce(iid: int, start: int = 0, minutes: int = 30, dc: int = 0x0001, ueg: int = 0) -> dict[str, Any]:
    return {"issuer_event_id": iid, "device_class": dc, "utility_enrollment_group": ueg, "start_time": start,
            "duration_in_minutes": minutes, "criticality_level": 3, "event_control": 0}


def at(offset_s: float) -> int:
    return utc_from_unix(T0 + offset_s)


def ask(esi: Esi, cluster: int, command: str, fields: dict[str, Any], now: float, *, device: Any = None,
        se_version: str = "1.1", ddr: bool = False) -> list[Any]:
    frame = decode_frame(cluster, encode_frame(cluster, command, fields, tsn=42, se_version=se_version,
                                               disable_default_response=ddr))
    return [decode_frame(c, f) for c, f in esi.answer(frame, now, device, se_version=se_version)]


def ids(frames: list[Any]) -> list[int]:
    return [f.fields["issuer_event_id"] for f in frames]


# ------------------------------------------------------------------------------ the definitions
def test_time_status_is_master_synchronized_superseding() -> None:
    assert ESI_TIME_STATUS == TimeStatus.MASTER | TimeStatus.SYNCHRONIZED | TimeStatus.SUPERSEDING == 0x0B
    values = time_attributes(T0)
    assert values == {0x0000: at(0), 0x0001: 0x0B, 0x0008: at(0), 0x0009: at(86_400)}


def test_event_status_codes_and_their_names() -> None:
    assert [int(s) for s in EventStatus] == [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0xF6, 0xF7, 0xF8, 0xF9, 0xFB, 0xFD, 0xFE]
    assert EventStatus(0xFB).name.lower() == "rejected_expired"
    assert EventStatus(0x08).text == "partially completed (opt out)"
    assert all(s.text for s in EventStatus)


# ------------------------------------------------------------------------------ events
def test_superseded_before_it_started_is_never_reissued() -> None:
    t = EsiTables()
    t.record("load_control_event", lce(200, at(600), 60), T0)
    t.record("load_control_event", lce(201, at(900), 60), T0 + 5)
    assert ids_of(t.scheduled_events(0, 0, None, T0 + 10)) == [201]


def test_running_event_is_reissued_until_its_successor_starts() -> None:
    t = EsiTables()
    t.record("load_control_event", lce(200, 0, 60), T0)
    t.record("load_control_event", lce(201, at(1800), 60), T0 + 60)
    assert ids_of(t.scheduled_events(0, 0, None, T0 + 120)) == [200, 201]
    assert ids_of(t.scheduled_events(0, 0, None, T0 + 1800)) == [201]


def test_partial_overlap_is_left_to_the_devices() -> None:
    """201 reaches only water heaters: 200 still reaches thermostats and stays."""
    t = EsiTables()
    t.record("load_control_event", lce(200, at(600), 60, dc=0x0001 | 0x0004), T0)
    t.record("load_control_event", lce(201, at(600), 60, dc=0x0004), T0 + 5)
    t.record("load_control_event", lce(300, at(600), 60, dc=0x0001, ueg=5), T0 + 6)  # group 5 only
    assert ids_of(t.scheduled_events(0, 0, None, T0 + 10)) == [200, 201, 300]


def test_events_that_only_touch_do_not_supersede() -> None:
    t = EsiTables()
    t.record("load_control_event", lce(200, at(600), 10), T0)
    t.record("load_control_event", lce(201, at(1200), 10), T0 + 5)
    assert ids_of(t.scheduled_events(0, 0, None, T0 + 10)) == [200, 201]


def ids_of(events: list[dict[str, Any]]) -> list[int]:
    return [e["issuer_event_id"] for e in events]


@settings(max_examples=300, deadline=None)
@given(minutes=st.integers(1, 1440), asked_after=st.floats(0, 1440 * 60, allow_nan=False))
def test_start_now_reissue_never_outlasts_the_event(minutes: int, asked_after: float) -> None:
    t = EsiTables()
    t.record("load_control_event", lce(7, 0, minutes), T0)
    now = T0 + asked_after
    end = T0 + minutes * 60
    sent = t.scheduled_events(0, 0, None, now)
    if not sent:
        assert end - now < 60  # ended, or in its last minute
        return
    (event,) = sent
    assert event["start_time"] == 0
    assert now + event["duration_in_minutes"] * 60 <= end  # a device that learns it now ends in time
    assert end - now - event["duration_in_minutes"] * 60 < 60  # and at most a minute early


@st.composite
def event_streams(draw: st.DrawFn) -> list[tuple[float, dict[str, Any]]]:
    """Events with rising issuer ids, sent at rising times, random overlaps and classes."""
    out: list[tuple[float, dict[str, Any]]] = []
    sent = 0.0
    for iid in range(draw(st.integers(1, 6))):
        sent += draw(st.integers(0, 600))
        start = draw(st.one_of(st.just(0), st.integers(0, 3600).map(lambda s, sent=sent: at(sent + s))))
        dc = draw(st.sampled_from([0x0001, 0x0004, 0x0005]))
        out.append((T0 + sent, lce(100 + iid, start, draw(st.integers(1, 120)), dc=dc)))
    return out


@settings(max_examples=300, deadline=None)
@given(stream=event_streams(), asked=st.integers(0, 9000))
def test_a_reissued_pair_never_has_one_superseding_the_other_once_it_took_effect(
        stream: list[tuple[float, dict[str, Any]]], asked: int) -> None:
    """Whatever was sent, GetScheduledEvents never re-issues an event whose replacement (newer,
    overlapping, reaching all its devices) is already in force — the two-thermostats defect."""
    t = EsiTables()
    for when, fields in stream:
        t.record("load_control_event", fields, when)
    now = stream[-1][0] + asked
    sent = {e["issuer_event_id"] for e in t.scheduled_events(0, 0, None, now)}
    for i, (old_sent, old) in enumerate(stream):
        old_start = old_sent if old["start_time"] == 0 else old["start_time"] + 946_684_800
        for new_sent, new in stream[i + 1:]:
            new_start = new_sent if new["start_time"] == 0 else new["start_time"] + 946_684_800
            overlap = (old_start < new_start + new["duration_in_minutes"] * 60
                       and new_start < old_start + old["duration_in_minutes"] * 60)
            covers = old["device_class"] & ~new["device_class"] == 0
            in_force = old_start > new_sent or now >= new_start
            if overlap and covers and in_force:
                assert old["issuer_event_id"] not in sent


# ------------------------------------------------------------------------------ answers as frames
def test_get_scheduled_events_answers_as_new_transactions_or_not_found() -> None:
    esi = Esi()
    [nothing] = ask(esi, DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 0}, T0)
    assert (nothing.command, nothing.tsn, nothing.fields) == ("default_response", 42, {"command_id": 1, "status": 0x8B})
    for iid in (1, 2, 3):
        esi.record("load_control_event", lce(iid, at(600 * iid), 5), T0)
    answers = ask(esi, DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 2}, T0)
    assert ids(answers) == [1, 2]
    assert all(f.disable_default_response and f.tsn != 42 for f in answers)  # the RES is the answer


def test_acknowledgements_get_success_unless_default_response_is_disabled() -> None:
    esi = Esi()
    res = {"issuer_event_id": 1, "event_status": 0x01, "event_status_time": at(0), "criticality_level_applied": 3,
           "event_control": 0, "signature_type": 0, "signature": b"\xff" * 42}
    [ok] = ask(esi, DRLC, "report_event_status", res, T0)
    assert ok.fields == {"command_id": 0x00, "status": 0x00}
    assert ask(esi, DRLC, "report_event_status", res, T0, ddr=True) == []


def test_get_block_periods_returns_them_in_the_layout_they_came_in() -> None:
    esi = Esi()
    [nothing] = ask(esi, PRICE, "get_block_periods", {"start_time": 0, "number_of_events": 0}, T0)
    assert nothing.fields == {"command_id": 0x03, "status": 0x8B}
    esi.record("publish_block_period", {  # SE 1.2, a start-now block period counted in days
        "provider_id": 1, "issuer_event_id": 9, "block_period_start_time": 0, "block_period_duration": 2,
        "block_period_control": 0, "block_period_duration_type": 0x01, "tariff_type": 0,
        "tariff_resolution_period": 0}, T0)
    esi.record("publish_block_period", {  # SE 1.1, minutes, starting in an hour
        "provider_id": 1, "issuer_event_id": 8, "block_period_start_time": at(3600), "block_period_duration": 60,
        "number_of_price_tiers": 2, "number_of_block_thresholds": 1, "block_period_control": 0}, T0)
    answers = ask(esi, PRICE, "get_block_periods", {"start_time": 0, "number_of_events": 0}, T0 + 600,
                  se_version="1.2")
    assert ids(answers) == [9, 8] and all(f.tsn == 42 for f in answers)
    days, minutes = (f.fields for f in answers)
    # "2 days" cannot be said as remaining minutes: the real start gives the device the same end.
    assert (days["block_period_start_time"], days["block_period_duration"]) == (at(0), 2)
    assert "number_of_block_thresholds" in minutes and minutes["block_period_start_time"] == at(3600)
    later = ask(esi, PRICE, "get_block_periods", {"start_time": 0, "number_of_events": 0}, T0 + 2 * 86_400)
    assert [f.command for f in later] == ["default_response"]


def test_cancel_all_messages_is_held_for_get_message_cancellation() -> None:
    esi = Esi()
    esi.record("display_message", {"message_id": 1, "message_control": 0, "start_time": 0,
                                   "duration_in_minutes": 60, "message": "hi"}, T0)
    esi.record("cancel_all_messages", {"implementation_date_time": at(600)}, T0 + 10)
    esi.record("cancel_all_messages", {"implementation_date_time": 0}, T0 + 20)
    [first] = ask(esi, MESSAGING, "get_message_cancellation", {"earliest_implementation_time": 0}, T0 + 30,
                  se_version="1.2")
    assert (first.command, first.fields) == ("cancel_all_messages", {"implementation_date_time": at(20)})
    [later] = ask(esi, MESSAGING, "get_message_cancellation", {"earliest_implementation_time": at(21)}, T0 + 30,
                  se_version="1.2")
    assert later.fields == {"implementation_date_time": at(600)}
    [none] = ask(esi, MESSAGING, "get_last_message", {}, T0 + 30)
    assert none.fields["status"] == 0x8B  # cancelled "now" by the second one


def test_a_protected_message_is_given_back_protected_and_expires() -> None:
    esi = Esi()
    esi.record("display_protected_message", {"message_id": 3, "message_control": 0, "start_time": 0,
                                             "duration_in_minutes": 10, "message": "pin 1234"}, T0)
    [again] = ask(esi, MESSAGING, "get_last_message", {}, T0 + 120, se_version="1.2")
    assert (again.command, again.fields["duration_in_minutes"]) == ("display_protected_message", 8)
    [gone] = ask(esi, MESSAGING, "get_last_message", {}, T0 + 600)
    assert gone.command == "default_response"


def test_a_device_has_its_own_tables_once_something_was_sent_to_it_alone() -> None:
    esi = Esi()
    esi.record("publish_price", price(1), T0)
    esi.record("display_message", {"message_id": 5, "message_control": 0, "start_time": 0,
                                   "duration_in_minutes": 60, "message": "yours"}, T0, b"A")
    esi.record("publish_price", price(2), T0 + 1)  # to everyone, after
    [mine] = ask(esi, MESSAGING, "get_last_message", {}, T0 + 2, device=b"A")
    [theirs] = ask(esi, MESSAGING, "get_last_message", {}, T0 + 2, device=b"B")
    assert mine.fields["message"] == "yours" and theirs.command == "default_response"
    prices = ask(esi, PRICE, "get_scheduled_prices", {"start_time": 0, "number_of_events": 0}, T0 + 2, device=b"A")
    assert ids(prices) == [1, 2]
    esi.forget(b"A")
    assert ask(esi, MESSAGING, "get_last_message", {}, T0 + 2, device=b"A")[0].command == "default_response"


def price(iid: int) -> dict[str, Any]:
    return {"provider_id": 1, "rate_label": "R", "issuer_event_id": iid, "current_time": 0, "unit_of_measure": 0,
            "currency": 840, "price_trailing_digit": 2, "price_tier": 1, "number_of_price_tiers": 1,
            "register_tier": 1, "start_time": 0, "duration_in_minutes": 60, "price": 100 + iid, "price_control": 0}


def test_time_read_and_reads_of_clusters_it_does_not_host() -> None:
    esi = Esi()
    [time] = ask(esi, TIME, "read_attributes", {"attribute_ids": [0, 1, 2]}, T0)
    assert [(r["attribute_id"], r["status"], r.get("value")) for r in time.fields["records"]] == [
        (0, 0, at(0)), (1, 0, 0x0B), (2, 0x86, None)]
    [metering] = ask(esi, 0x0702, "read_attributes", {"attribute_ids": [0]}, T0)
    assert metering.fields["status"] == 0x81
