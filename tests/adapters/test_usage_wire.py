"""The meter-read messages of the three protocols (issue 16), without sockets: each page and register
read survives its protocol's encoding to the Wh; a malformed or out-of-range answer is a WireError
naming the field, the value and the limit; the binary INTERVALS frame is pinned to the bytes
docs/adapter-author.md shows."""

from __future__ import annotations

import pytest

from ams_adapters.wire import binary as bw
from ams_adapters.wire import cim, cim_reads
from ams_adapters.wire import multispeak_reads as msr
from ams_adapters.wire.common import HeadEndRequest, HeadEndRequestKind, NoteKind, Notification, WireError
from ams_adapters.wire.reads import (
    IntervalPage,
    IntervalValue,
    ReadRefused,
    RegisterValue,
    check_page,
    check_register,
    kwh,
    wh_of,
)

ESI = "10443720000000002"
T = 1796513400  # a 15-minute boundary
PAGE = IntervalPage(ESI, (
    IntervalValue(T, 900, "consumption", 0, "actual"), IntervalValue(T, 900, "generation", 1234, "actual"),
    IntervalValue(T + 900, 900, "consumption", 1_000_000, "estimated"),
    IntervalValue(T + 900, 900, "generation", 7, "estimated"),
    IntervalValue(T + 1800, 900, "consumption", 999, "missing")), next_start=T + 2700)


def _binary(page: IntervalPage) -> IntervalPage:
    ftype, seq, body = bw.unpack(bw.pack("INTERVALS", 3, bw.intervals_body(page))[4:])
    assert (ftype, seq) == ("INTERVALS", 3)
    return bw.page_from(body)


def _cim(page: IntervalPage) -> IntervalPage:
    return cim_reads.decode_intervals(cim_reads.encode_intervals("m1", "m2", page), ESI)


def _multispeak(page: IntervalPage) -> IntervalPage:
    remaining = 0 if page.next_start is None else 4
    return msr.decode_intervals(msr.encode_intervals(page, remaining), ESI)


@pytest.mark.parametrize("codec", [_binary, _cim, _multispeak])
def test_a_page_survives_each_protocol_to_the_wh(codec) -> None:  # type: ignore[no-untyped-def]
    assert codec(PAGE) == PAGE
    last = IntervalPage(ESI, PAGE.values[:2])
    assert codec(last) == last
    check_page(PAGE, ESI, T, T + 4 * 900, limit=3)


def test_the_binary_intervals_frame_is_the_documented_bytes() -> None:
    page = IntervalPage(ESI, (IntervalValue(T, 900, "consumption", 183, "actual"),))
    assert bw.pack("INTERVALS", 1, bw.intervals_body(page)).hex() == (
        "00000042" "07" "00000001" "00026f6b" "0000" "00000000" "0011" + ESI.encode().hex()
        + "ffffffffffffffff" "0001" "000000006b149e78" "00000384" "00" "00" "00000000000000b7")


def test_refusals_travel_as_refusals() -> None:
    busy = ReadRefused("head-end at capacity", retry_after_s=0.2, busy=True)
    for refused in (_binary_refused(busy), _cim_refused(busy)):
        assert (refused.reason, refused.retry_after_s, refused.busy, refused.permanent) == (
            "head-end at capacity", 0.2, True, False)
    gone = ReadRefused("meterID 1: no such meter at this head-end", permanent=True)
    with pytest.raises(ReadRefused) as info:
        msr.decode_intervals(msr.encode_read_refused(msr.GET_INTERVALS, gone), ESI)
    assert info.value.permanent and "no such meter" in info.value.reason


def _binary_refused(refused: ReadRefused) -> ReadRefused:
    with pytest.raises(ReadRefused) as info:
        bw.page_from(bw.unpack(bw.pack("INTERVALS", 1, bw.intervals_body(refused=refused))[4:])[2])
    return info.value


def _cim_refused(refused: ReadRefused) -> ReadRefused:
    with pytest.raises(ReadRefused) as info:
        cim_reads.decode_intervals(cim_reads.encode_refused("m1", "m2", refused), ESI)
    return info.value


def test_kwh_text_is_whole_wh_or_refused() -> None:
    for wh in (0, 1, 999, 1000, 123_456_789):
        assert wh_of(kwh(wh), "value") == wh
    with pytest.raises(WireError, match=r"reading: '1.2345' is invalid: kWh with at most 3 decimals"):
        wh_of("1.2345", "reading")
    with pytest.raises(WireError, match="a number of kWh"):
        wh_of("twelve", "posKWh")


@pytest.mark.parametrize(("page", "field", "limit"), [
    (IntervalPage(ESI, (IntervalValue(T, 900, "consumption", -1, "actual"),)), "value", "0..1000000 Wh"),
    (IntervalPage(ESI, (IntervalValue(T, 900, "consumption", 1_000_001, "actual"),)), "value", "0..1000000 Wh"),
    (IntervalPage(ESI, (IntervalValue(T - 900, 900, "consumption", 1, "actual"),)), "intervalStart", "boundary in"),
    (IntervalPage(ESI, (IntervalValue(T + 60, 900, "consumption", 1, "actual"),)), "intervalStart", "boundary in"),
    (IntervalPage(ESI, (IntervalValue(T, 3600, "consumption", 1, "actual"),)), "intervalLength", "900 seconds"),
    (IntervalPage(ESI, (IntervalValue(T, 900, "reactive", 1, "actual"),)), "channel", "one of"),
    (IntervalPage(ESI, (IntervalValue(T, 900, "consumption", 1, "validated"),)), "quality", "one of"),
    (IntervalPage(ESI, (IntervalValue(T, 900, "consumption", 1, "actual"),) * 2), "intervalStart", "one consumption"),
    (IntervalPage("10443720000000003", ()), "meterID", "the meter asked for"),
    (IntervalPage(ESI, tuple(IntervalValue(T + i * 900, 900, "consumption", 1, "actual") for i in range(4))),
     "intervals", "at most 3"),
    (IntervalPage(ESI, (IntervalValue(T, 900, "consumption", 1, "actual"),), next_start=T), "lastSent/next start",
     "after the last value sent"),
])
def test_an_unsound_answer_names_field_value_and_limit(page: IntervalPage, field: str, limit: str) -> None:
    with pytest.raises(WireError) as info:
        check_page(page, ESI, T, T + 8 * 900, limit=3)
    assert info.value.field == field and limit in info.value.limit


def test_malformed_messages_are_refused_by_field() -> None:
    xml = cim_reads.encode_intervals("m1", "m2", PAGE).replace(cim_reads.DELIVERED_15MIN.encode(),
                                                                b"0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0")
    with pytest.raises(WireError) as cim_bad:
        cim_reads.decode_intervals(xml, ESI)
    assert cim_bad.value.field == "IntervalBlocks/ReadingType/@ref"
    xml = msr.encode_intervals(PAGE, 0).replace(b'units="kWh"', b'units="MWh"', 1)
    with pytest.raises(WireError, match="channel/@units"):
        msr.decode_intervals(xml, ESI)
    body = bw.intervals_body(PAGE)
    body["intervals"][0]["channel"] = 7
    with pytest.raises(WireError, match=r"channel: 7 is invalid: 0\.\.1"):
        bw.page_from(bw.unpack(bw.pack("INTERVALS", 1, body)[4:])[2])


def test_register_reads_survive_each_protocol() -> None:
    register = RegisterValue(T, 12_345_678, None, 2_400)
    note = Notification(NoteKind.METER_READ, "oncor:read:x-1", ESI, float(T), register=register)
    assert msr.decode_reading_changed(msr.encode_reading_changed(note)) == note
    _, _, body = bw.unpack(bw.pack("RESULTS", 1, {"results": [bw.result_body(9, note)]})[4:])
    assert bw.result_from(body.results[0]) == (9, note)
    h, root = cim.parse(cim_reads.encode_register("m1", "m2", note))
    assert cim_reads.register_note(h, root) == note
    with_solar = RegisterValue(T, 5, 6, None)
    solar = msr.decode_reading_changed(msr.encode_reading_changed(
        Notification(NoteKind.METER_READ, "t", ESI, float(T), register=with_solar)))
    assert solar is not None and solar.register == with_solar
    with pytest.raises(WireError, match="delivered register"):
        check_register(RegisterValue(T, -3))


def test_get_meter_readings_asks_for_what_each_read_needs() -> None:
    h, root = cim.parse(cim_reads.encode_get_intervals("m1", "r/1", ESI, (T, T + 3600), T + 900))
    got = cim_reads.get_meter_readings_from(h, root)
    assert (got.esi_id, got.register, got.start, got.end, h.async_reply) == (ESI, False, T + 1800, T + 3600, False)
    req = HeadEndRequest("centerpoint:read:a-1", ESI, HeadEndRequestKind.METER_READ, float(T + 60))
    h, root = cim.parse(cim_reads.encode_get_register("m2", "r/1", req))
    got = cim_reads.get_meter_readings_from(h, root)
    assert got.register and got.request == req and h.async_reply
