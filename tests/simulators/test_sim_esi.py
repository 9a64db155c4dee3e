"""The simulated meter's ESI answers, end to end on the virtual clock (issue 13, "The ESI").

Each test drives the meter as a head-end would (encoded frames in) and looks at what a device that
joins later is told, from the bytes the device received.
"""

from __future__ import annotations

from typing import Any

from simulators.addressing import install_code_with_crc
from simulators.client_device import ClientDevice
from simulators.device import DRLC, MESSAGING, PRICE, TIME
from simulators.factory import DEVICE_CLASSES
from simulators.meter import ALL_DEVICES
from simulators.profiles import load_profiles, profile_from_dict
from simulators.scenario import ScenarioPremise
from simulators.se_time import from_utc, to_utc
from zigbee_se import DecodedFrame, decode_frame

PROFILES = load_profiles()
LATE = (0x000D6F00000009FF).to_bytes(8, "little")


def lce(iid: int, *, start: int = 0, minutes: int = 30, dc: int = 0x0001) -> dict[str, Any]:
    return {"issuer_event_id": iid, "device_class": dc, "utility_enrollment_group": 0, "start_time": start,
            "duration_in_minutes": minutes, "criticality_level": 3, "event_control": 0}


def join_late(p: ScenarioPremise, profile_id: str) -> Any:
    """A device of `profile_id` that also keeps every frame the ESI sent it (decoded)."""
    base = DEVICE_CLASSES[PROFILES[profile_id].device_type]

    class Listening(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.heard: list[DecodedFrame] = []

        def deliver(self, cluster_id: int, zcl_frame: bytes) -> None:
            self.heard.append(decode_frame(cluster_id, zcl_frame))
            super().deliver(cluster_id, zcl_frame)

    code = install_code_with_crc(bytes([0x5A]) * 16)
    device = Listening(LATE, code, PROFILES[profile_id], p.clock)
    p.meter.provision_device(LATE, code, join_window_s=3600)
    p.meter.join(device)
    p.clock.advance(30)  # join, time read, GetScheduledEvents and the answers
    return device


def heard(device: Any, command: str) -> list[DecodedFrame]:
    return [f for f in device.heard if f.command == command]


def test_superseded_event_is_not_reissued_to_a_device_that_joins_later() -> None:
    """Two identical thermostats must run the same event: 201 replaced 200 before the second joined."""
    p = ScenarioPremise.build(["silabs-pct"])
    first = p.devices[0]
    start = to_utc(p.clock.now() + 600)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(200, start=start, minutes=60))
    p.clock.advance(5)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(201, start=start + 300, minutes=60))
    p.clock.advance(5)
    assert (200, 0x07) in p.statuses(first.eui64)
    second = join_late(p, "silabs-pct")
    assert [f.fields["issuer_event_id"] for f in heard(second, "load_control_event")] == [201]
    p.clock.advance(1200)
    running = [(e["issuer_event_id"], e["state"]) for e in second.drlc.snapshot() if not e["superseded"]]
    assert running == [(201, "active")]
    assert [s for s in p.statuses(second.eui64) if s[0] == 200] == []


def test_running_event_superseded_by_a_start_now_one_is_not_reissued() -> None:
    p = ScenarioPremise.build(["silabs-pct"])
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(200, minutes=60))
    p.clock.advance(60)
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(201, minutes=60))
    p.clock.advance(60)
    second = join_late(p, "silabs-pct")
    assert [f.fields["issuer_event_id"] for f in heard(second, "load_control_event")] == [201]


def test_start_now_event_reissued_midway_never_outlasts_its_end() -> None:
    """At +90 s of a 5-minute start-now event the re-issued one must end by the real end."""
    p = ScenarioPremise.build([])
    t0 = p.clock.now()
    p.send(ALL_DEVICES, "drlc", "load_control_event", lce(300, minutes=5))
    p.clock.advance(85)  # the device joins, syncs its time and asks at about +90 s
    device = join_late(p, "silabs-pct")
    (event,) = heard(device, "load_control_event")
    assert event.fields["start_time"] == 0
    assert event.fields["duration_in_minutes"] == 3  # 3.5 minutes remained: rounded down
    (entry,) = device.drlc.snapshot()
    assert entry["effective_end"] <= t0 + 300
    # In its last minute the event is not re-issued at all (it could only overrun).
    p.clock.advance(300 - (p.clock.now() - t0) - 30)
    device.send(DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 0})
    p.clock.advance(3)
    assert heard(device, "default_response")[-1].fields["status"] == 0x8B


def test_get_block_periods_answers_the_stored_block_period_or_not_found() -> None:
    p = ScenarioPremise.build([])
    ihd = join_late(p, "silabs-ihd")
    ihd.heard.clear()  # the answers to its own requests after joining
    ihd.send(PRICE, "get_block_periods", {"start_time": 0, "number_of_events": 0})
    p.clock.advance(3)
    (answer,) = heard(ihd, "default_response")
    assert answer.fields == {"command_id": 0x03, "status": 0x8B}  # NOT_FOUND: none held
    p.send(ALL_DEVICES, "price", "publish_block_period", {
        "provider_id": 77, "issuer_event_id": 500, "block_period_start_time": 0,
        "block_period_duration": 60, "number_of_price_tiers": 2, "number_of_block_thresholds": 3,
        "block_period_control": 0x00})
    p.clock.advance(600)
    ihd.heard.clear()
    ihd.price.block_periods = None
    ihd.send(PRICE, "get_block_periods", {"start_time": 0, "number_of_events": 0})
    p.clock.advance(3)
    (period,) = heard(ihd, "publish_block_period")
    assert period.fields["issuer_event_id"] == 500
    # start now, 49.9 minutes left: rounded down
    assert (period.fields["block_period_start_time"], period.fields["block_period_duration"]) == (0, 49)
    assert ihd.price.block_periods is not None and (77, 500) in ihd.price.block_periods
    assert heard(ihd, "default_response") == []


def se12_ihd() -> Any:
    return profile_from_dict({
        "id": "ihd-12", "vendor": "v", "model": "m", "firmware_version": "1", "se_version": "1.2",
        "device_type": "ihd", "clusters": ["messaging", "price", "time"]})


def test_get_message_cancellation_returns_the_cancel_all_messages_or_not_found() -> None:
    PROFILES["ihd-12"] = se12_ihd()
    try:
        p = ScenarioPremise.build([], se_version="1.2")
        ihd = join_late(p, "ihd-12")
        ihd.heard.clear()
        ihd.send(MESSAGING, "get_message_cancellation", {"earliest_implementation_time": 0})
        p.clock.advance(3)
        assert [f.fields for f in heard(ihd, "default_response")] == [{"command_id": 0x02, "status": 0x8B}]
        p.send(ALL_DEVICES, "messaging", "cancel_all_messages", {"implementation_date_time": 0},
               se_version="1.2")
        cancelled_at = to_utc(p.clock.now())
        p.clock.advance(60)
        ihd.heard.clear()
        ihd.send(MESSAGING, "get_message_cancellation", {"earliest_implementation_time": cancelled_at - 10})
        ihd.send(MESSAGING, "get_message_cancellation", {"earliest_implementation_time": cancelled_at + 10})
        p.clock.advance(3)
        (cancel,) = heard(ihd, "cancel_all_messages")
        assert abs(cancel.fields["implementation_date_time"] - cancelled_at) <= 1
        assert [f.fields["status"] for f in heard(ihd, "default_response")] == [0x8B]  # none that late
    finally:
        del PROFILES["ihd-12"]


def test_time_status_is_master_synchronized_superseding() -> None:
    p = ScenarioPremise.build([])
    ihd = join_late(p, "silabs-ihd")
    (response,) = [f for f in ihd.heard if f.command == "read_attributes_response" and f.cluster == TIME]
    values = {r["attribute_id"]: r.get("value") for r in response.fields["records"]}
    assert values[0x0001] == 0x0B  # Master | Synchronized | Superseding
    assert abs(from_utc(values[0x0000]) - p.clock.now()) <= 40
    assert ihd.time_synced


def test_a_message_to_one_device_is_not_given_to_another() -> None:
    p = ScenarioPremise.build(["silabs-ihd"])
    first = p.devices[0]
    p.send(first.eui64, "messaging", "display_message", {
        "message_id": 9, "message_control": 0, "start_time": 0, "duration_in_minutes": 60, "message": "yours"})
    p.clock.advance(5)
    assert first.messaging.displayed_text == "yours"
    other = join_late(p, "silabs-ihd")
    assert heard(other, "display_message") == []
    assert isinstance(other, ClientDevice) and other.messaging.displayed_text is None
