"""The shared robustness layer and the wire formats, unit by unit (no sockets needed)."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import pytest

from ams_adapters.contract import SubmitOutcome, SubmitResult
from ams_adapters.pacing import Backoff, TokenBucket, backoff_delay
from ams_adapters.profiles import HeadEndProfileError, load_profile
from ams_adapters.resilience import CircuitBreaker, Tracked, Tracker
from ams_adapters.wire import binary as bw
from ams_adapters.wire import cim
from ams_adapters.wire import multispeak as ms
from ams_adapters.wire.common import (
    Ack,
    AckStatus,
    HeadEndRequest,
    HeadEndRequestKind,
    NoteKind,
    Notification,
    WireError,
)
from simulators.errors import SimulatorError
from simulators.headends.faults import Faults


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_backoff_is_jittered_and_capped() -> None:
    b = Backoff(0.1, 1.0, random.Random(1))
    delays = [b.delay(n) for n in range(1, 10) for _ in range(20)]
    assert all(0 <= d <= 1.0 for d in delays) and len(set(delays)) > 50


def test_backoff_delay_grows_caps_and_keeps_its_floor() -> None:
    """The one retry formula: min(cap, base·2^n) times a random factor in [floor, 1]."""
    rng = random.Random(7)
    for attempt, step in ((0, 1.0), (1, 2.0), (3, 8.0), (10, 60.0), (5000, 60.0)):
        delays = [backoff_delay(attempt, 1.0, 60.0, floor=0.5, rng=rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > step / 4  # jittered, not one value
    assert backoff_delay(2, 0.1, 1.0) <= 0.4  # full jitter by default: anywhere in [0, step]


def test_breaker_opens_probes_once_and_closes() -> None:
    c = Clock()
    br = CircuitBreaker(failure_threshold=3, reset_after_s=2.0, clock=c)
    for _ in range(3):
        assert br.allow()
        br.record_failure()
    assert br.state == "open" and not br.allow() and br.retry_after() == pytest.approx(2.0)
    c.t = 2.5
    assert br.state == "half_open" and br.allow() and not br.allow()  # one probe at a time
    br.record_failure()
    assert br.state == "open" and br.opened_count == 2
    c.t = 5.0
    assert br.allow()
    br.cancel_probe()  # granted but nothing went out: the next caller may probe
    assert br.allow()
    br.record_success()
    assert br.state == "closed" and br.allow()


def test_token_bucket_says_how_long_to_wait() -> None:
    c = Clock()
    tb = TokenBucket(10.0, burst=5, clock=c)
    assert tb.wait_time(5) == 0 and tb.reserve(5) == 0
    assert tb.wait_time(1) == pytest.approx(0.1)
    assert tb.reserve(2) == pytest.approx(0.2)
    c.t = 1.0
    assert tb.wait_time(3) == 0
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0)


def test_token_bucket_takes_only_what_is_there_and_says_when_it_is_full() -> None:
    c = Clock()
    tb = TokenBucket(0.5, burst=3, clock=c)
    assert [tb.try_take() for _ in range(4)] == [True, True, True, False]  # never into debt
    assert tb.tokens == 0 and tb.until_full() == pytest.approx(6.0)
    c.t = 2.0
    assert tb.tokens == pytest.approx(1.0) and tb.try_take() and tb.until_full() == pytest.approx(6.0)


def test_tracker_ends_an_item_once() -> None:
    tr = Tracker(keep_ended_s=10)
    item = tr.add(Tracked("o1", "esi", "tx1", 100.0, SubmitResult("o1", SubmitOutcome.ACCEPTED)))
    assert tr.by_transaction("tx1") is item
    assert tr.end(item, "delivered", 1.0)
    assert not tr.end(item, "delivered", 2.0) and tr.duplicates_ignored == 1
    assert not tr.end(item, "expired", 3.0) and tr.late_ignored == 1
    tr.add(Tracked("o2", "esi", "tx2", 100.0))
    tr.end(tr.get("o2"), "failed", 20.0)  # type: ignore[arg-type]
    assert tr.get("o1") is None and tr.get("o2") is not None  # ended long ago: forgotten


REQ = HeadEndRequest("oncor:o1", "10443720000000001", HeadEndRequestKind.TEXT, time.time() + 60, "device",
                     "00:0d:6f:00:0a:bc:de:f0", 0x0703, "display_message",
                     {"message_id": 5, "message_control": 0, "start_time": 0, "duration_in_minutes": 1,
                      "message": "<b>&amp; 42</b>"}, b"\x01", "1.1")


def test_multispeak_round_trip_and_strict_checks() -> None:
    xml = ms.encode_request(REQ, "http://gw/NOT_Server")
    req, url = ms.decode_request(xml)
    assert url == "http://gw/NOT_Server" and req.fields == REQ.fields and req.eui64 == REQ.eui64
    assert b"<InitiateInHomeDisplayMessage>" in xml and b"<transactionID>oncor:o1" in xml
    with pytest.raises(WireError) as info:
        ms.decode_request(xml.replace(b"InitiateInHomeDisplayMessage", b"InitiateSomethingElse"))
    assert info.value.field == "operation"
    with pytest.raises(WireError) as info:
        ms.decode_request(xml.replace(b"messageID>", b"bogusField>"))
    assert info.value.field == "bogusField"
    with pytest.raises(WireError):
        ms.decode_request(b"<not-xml")
    with pytest.raises(WireError) as info:
        ms.decode_request(xml.replace(b"<transactionID>oncor:o1</transactionID>", b""))
    assert info.value.field == "transactionID"
    ack = ms.decode_response(ms.encode_response("InitiateHANPricing", Ack("t", AckStatus.REJECTED, "no")), "t")
    assert ack == Ack("t", AckStatus.REJECTED, "no")
    note = Notification(NoteKind.PROVISIONING, "t", "e", 1_800_000_000.0, state="joined", eui64="00:11")
    assert ms.decode_notification(ms.encode_notification(note, HeadEndRequestKind.PROVISION_DEVICE)) == note
    assert ms.decode_register(ms.encode_register("http://x/NOT_Server")) == "http://x/NOT_Server"


def test_cim_round_trip_partial_results_and_strict_checks() -> None:
    other = HeadEndRequest("oncor:o2", "10443720000000002", HeadEndRequestKind.CANCEL_ALL_LOAD_CONTROL, REQ.expires_at,
                           cluster_id=0x0701, command="cancel_all_load_control_events", fields={"cancel_control": 0})
    xml = cim.encode_controls("m1", "p/reply/gw", [REQ, other])
    header, reqs = cim.decode_controls(xml)
    assert header.reply_address == "p/reply/gw" and header.async_reply and [r.fields for r in reqs] == [
        REQ.fields, other.fields]
    assert b"<issuerTrackingID>oncor:o1</issuerTrackingID>" in xml and b"<PanDisplay>" in xml
    reply = cim.encode_reply("m1", "m2", [Ack("oncor:o1", AckStatus.OK), Ack("oncor:o2", AckStatus.BUSY, "full", 1.5)])
    assert b"<Result>PARTIAL</Result>" in reply
    h, acks = cim.decode_reply(reply, ["oncor:o1", "oncor:o2"])
    assert h.correlation_id == "m1" and acks[1] == Ack("oncor:o2", AckStatus.BUSY, "full", 1.5)
    with pytest.raises(WireError) as info:
        cim.decode_controls(xml.replace(b"<Verb>create</Verb>", b"<Verb>delete</Verb>"))
    assert info.value.field == "Verb"
    with pytest.raises(WireError) as info:
        cim.decode_reply(reply.replace(b"PARTIAL", b"MAYBE"), [])
    assert info.value.field == "Result"
    note = Notification(NoteKind.DEVICE_RESPONSE, "oncor:o1", "e", 1_800_000_000.0, eui64="00:11",
                        cluster_id=0x0703, frame=b"\x09\x01")
    assert cim.decode_events(cim.encode_events("m3", [note])) == [note]


def test_cim_topics_are_pinned() -> None:
    # The adapter and the emulated head-end share cim.topics(): written out here, so a change to the
    # shared definition cannot move both ends to a topic a real broker's ACLs or head-end do not expect.
    assert cim.topics("utility/hangw") == {"request": "utility/hangw/request/EndDeviceControls",
                                           "events": "utility/hangw/event/EndDeviceEvents",
                                           "reply": "utility/hangw/reply"}


def test_binary_round_trip_and_garbage() -> None:
    data = bw.pack("SUBMIT", 7, bw.request_body(REQ))
    assert bw.frame_length(data[:4]) == len(data) - 4
    kind, seq, body = bw.unpack(data[4:])
    assert (kind, seq) == ("SUBMIT", 7) and bw.request_from(body).frame == REQ.frame
    with pytest.raises(WireError):
        bw.unpack(b"\x09\x00\x00")
    with pytest.raises(WireError) as info:
        bw.frame_length((1 << 24).to_bytes(4, "big"))
    assert info.value.field == "length"


def test_profiles_and_faults_refuse_bad_values(tmp_path: object) -> None:
    assert load_profile("oncor").max_text_bytes == 80 and load_profile("oncor").max_frame_size is None
    assert load_profile("oncor").route_capabilities().max_text_bytes == 80
    assert load_profile("tnmp").transport == "binary" and load_profile("tnmp").carries_frames
    assert not load_profile("oncor").carries_frames  # MultiSpeak carries the SE fields
    meter = {"se_version": "1.1", "max_devices": 5, "max_load_control_devices": 5, "max_text_bytes": 57,
             "max_frame_size": 73, "price_tiers": 15}
    with pytest.raises(HeadEndProfileError) as info:  # the characters of before: renamed, in bytes
        load_profile("tnmp", meter=meter | {"max_text_length": 57})
    assert info.value.field == "meter.max_text_length" and "max_text_bytes" in info.value.limit
    with pytest.raises(HeadEndProfileError) as info:
        load_profile("tnmp", meter=meter | {"max_text_bytes": 255})  # beyond a ZCL string
    assert info.value.field == "max_text_bytes"
    with pytest.raises(HeadEndProfileError) as info:
        load_profile("oncor", batch_size=0)
    assert info.value.field == "batch_size"
    with pytest.raises(HeadEndProfileError):
        load_profile("nowhere")
    with pytest.raises(HeadEndProfileError):
        load_profile("aep_north").with_transport("carrier-pigeon")
    with pytest.raises(SimulatorError) as err:
        Faults.from_mapping({"error_rate": 1.5})
    assert err.value.field == "faults.error_rate"
    with pytest.raises(SimulatorError):
        Faults.from_mapping({"meteor_rate": 0.1})


def test_multispeak_group_operation_round_trip_and_strict_checks() -> None:
    members = [replace(REQ, transaction_id=f"oncor:g{i}", esi_id=f"1044372000000000{i}", eui64=None,
                       target="capable_devices") for i in range(3)]
    xml = ms.encode_group_request(members, "http://gw/NOT_Server")
    assert b"<InitiateInHomeDisplayMessageToGroup>" in xml and xml.count(b"<member>") == 3
    reqs, url, operation = ms.decode_requests(xml)
    assert operation == "InitiateInHomeDisplayMessageToGroup" and url == "http://gw/NOT_Server"
    assert [(r.esi_id, r.transaction_id) for r in reqs] == [(m.esi_id, m.transaction_id) for m in members]
    assert all(r.fields == REQ.fields for r in reqs)
    with pytest.raises(WireError) as info:  # a member without its transaction
        ms.decode_requests(xml.replace(b"<transactionID>oncor:g1</transactionID>", b""))
    assert info.value.field == "transactionID"
    with pytest.raises(WireError) as info:  # payloads that differ never share a group
        ms.encode_group_request([members[0], replace(members[1], fields={**REQ.fields, "message_id": 6})], "u")
    assert info.value.field == "members"
    assert ms.group_key(REQ) is None  # one device: never grouped
    acks = ms.decode_group_response(ms.encode_group_response(operation, [
        Ack("oncor:g0", AckStatus.OK), Ack("oncor:g1", AckStatus.REJECTED, "no such meter"),
        Ack("oncor:g2", AckStatus.BUSY, "full", 0.5)]), [m.transaction_id for m in members])
    assert [a.status for a in acks] == [AckStatus.OK, AckStatus.REJECTED, AckStatus.BUSY]
    assert acks[2].retry_after_s == 0.5
    with pytest.raises(WireError) as info:  # an error for a transaction not in the group
        ms.decode_group_response(ms.encode_group_response(operation, [Ack("other", AckStatus.ERROR)]), ["oncor:g0"])
    assert info.value.field == "errorObject/@objectID"
