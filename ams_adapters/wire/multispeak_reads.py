"""MultiSpeak 4.1 meter reading (MR_Server) for usage (issue 16), in the style of the HAN messages
(ams_adapters/wire/multispeak.py): lxml element by element, SOAP 1.1, the 4.1 namespace.

- Interval data: ``GetReadingsByMeterIDListAndFieldNameIntervalData(meterIDs[], startDate, endDate,
  lastReceived, fieldNames[])`` (MultiSpeak 4.1.6 MR_Server, ENERGY_DATA.md §3.2), answered at once
  with ``intervalData``: one ``profile`` (``intervalLength`` 900 s, ``channels`` 1 ``posKWh`` and 2
  ``negKWh`` in kWh with three decimals, so whole Wh) and one ``block`` per interval
  (``meterID``, ``intervalStart``, ``readings/reading channel= status=`` actual | estimated |
  missing). A head-end answers a bounded number of intervals: the response's MultiSpeakMsgHeader
  says how many remain (``ObjectsRemaining``) and which it sent last (``LastSent``, the last
  ``intervalStart``); the next call passes that as ``lastReceived`` (§3.1 paging).
- On-demand read: ``InitiateMeterReadingsByMeterID(meterIDs[], responseURL, transactionID,
  expirationTime)`` (4.1; 3.0's ``InitiateMeterReadByMeterNumber``), acknowledged with the usual
  Result/errorObject; the meter's registers come later to ``responseURL`` as
  ``ReadingChangedNotification(changedMeterReads/meterReading[], transactionID)`` with ``meterID``,
  ``readingDate``, ``posKWh``, ``negKWh`` (where the meter has one) and ``kW``. After
  ``expirationTime`` the head-end drops the request without an answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from ams_adapters.wire.common import (
    Ack,
    AckStatus,
    HeadEndRequest,
    HeadEndRequestKind,
    NoteKind,
    Notification,
    WireError,
)
from ams_adapters.wire.multispeak import _M, MS_NS, _body_child, _envelope, _from_iso, _iso, _sub, _text
from ams_adapters.wire.reads import INTERVAL_S, IntervalPage, IntervalValue, ReadRefused, RegisterValue, kwh, wh_of

ENDPOINT = "MR_Server"
GET_INTERVALS = "GetReadingsByMeterIDListAndFieldNameIntervalData"
INITIATE_READ = "InitiateMeterReadingsByMeterID"
READING_CHANGED = "ReadingChangedNotification"
FIELD_OF_CHANNEL = {"consumption": "posKWh", "generation": "negKWh"}
CHANNEL_OF_FIELD = {v: k for k, v in FIELD_OF_CHANNEL.items()}


def _doc(env: etree._Element) -> bytes:
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def _header(xml: bytes) -> etree._Element | None:
    root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    return root.find(f"{{http://schemas.xmlsoap.org/soap/envelope/}}Header/{_M}MultiSpeakMsgHeader")


# ------------------------------------------------------------------ interval data


def encode_get_intervals(esi_id: str, start: int, end: int, last_received: int | None,
                         app_name: str = "han-gateway") -> bytes:
    env, body = _envelope({"AppName": app_name, "AppVersion": "0.1"})
    op = etree.SubElement(body, _M + GET_INTERVALS)
    _sub(_sub(op, "meterIDs"), "meterID", esi_id)
    _sub(op, "startDate", _iso(start))
    _sub(op, "endDate", _iso(end))
    if last_received is not None:
        _sub(op, "lastReceived", _iso(last_received))
    names = _sub(op, "fieldNames")
    for name in FIELD_OF_CHANNEL.values():
        _sub(names, "fieldName", name)
    return _doc(env)


def decode_get_intervals(op: etree._Element) -> tuple[str, int, int]:
    """(meter, start, end) of a parsed GetReadingsByMeterIDListAndFieldNameIntervalData; a
    ``lastReceived`` moves the start past the interval it names."""
    ids = op.find(_M + "meterIDs")
    meters = [] if ids is None else [el.text or "" for el in ids.iterfind(_M + "meterID")]
    if len(meters) != 1 or not meters[0]:
        raise WireError("meterIDs", meters, "exactly one meterID (this head-end reads one meter per call)")
    start = int(_from_iso(_text(op, "startDate") or "", "startDate"))
    end = int(_from_iso(_text(op, "endDate") or "", "endDate"))
    last = _text(op, "lastReceived", required=False)
    if last is not None:
        start = max(start, int(_from_iso(last, "lastReceived")) + INTERVAL_S)
    return meters[0], start, end


def encode_intervals(page: IntervalPage, remaining: int) -> bytes:
    header = {"AppName": "headend", "ObjectsRemaining": str(remaining)}
    if page.next_start is not None:
        header["LastSent"] = _iso(page.next_start - INTERVAL_S)
    env, body = _envelope(header)
    resp = etree.SubElement(body, _M + f"{GET_INTERVALS}Response")
    data = _sub(etree.SubElement(resp, _M + f"{GET_INTERVALS}Result"), "intervalData")
    profile = _sub(_sub(data, "profiles"), "profile", intervalLength=str(INTERVAL_S))
    channels = _sub(profile, "channels")
    index = {}
    for i, (channel, name) in enumerate(FIELD_OF_CHANNEL.items(), start=1):
        _sub(channels, "channel", index=str(i), fieldName=name, units="kWh")
        index[channel] = str(i)
    blocks = _sub(data, "blocks")
    by_start: dict[int, etree._Element] = {}
    for v in page.values:
        block = by_start.get(v.start)
        if block is None:
            block = by_start[v.start] = _sub(blocks, "block")
            _sub(block, "meterID", page.esi_id)
            _sub(block, "intervalStart", _iso(v.start))
            _sub(block, "readings")
        readings = block.find(_M + "readings")
        _sub(readings, "reading", kwh(v.value_wh), channel=index.get(v.channel, v.channel), status=v.quality)
    return _doc(env)


def decode_intervals(xml: bytes, esi_id: str) -> IntervalPage:
    """The head-end's answer; `ReadRefused` for its errorObject, WireError for a malformed one."""
    resp = _body_child(xml)
    if resp.tag != _M + f"{GET_INTERVALS}Response":
        raise WireError("response", etree.QName(resp).localname, f"{GET_INTERVALS}Response")
    result = resp.find(_M + f"{GET_INTERVALS}Result")
    if result is None:
        raise WireError("result", None, f"{GET_INTERVALS}Response must hold its Result element")
    err = result.find(_M + "errorObject")
    if err is not None:
        raise _refusal(err)
    data = result.find(_M + "intervalData")
    if data is None:
        raise WireError("intervalData", None, f"required in {GET_INTERVALS}Result")
    profile = data.find(f"{_M}profiles/{_M}profile")
    length_text = None if profile is None else profile.get("intervalLength")
    if length_text is None or not length_text.isdigit():
        raise WireError("profile/@intervalLength", length_text, "a number of seconds (900)")
    length = int(length_text)
    channels: dict[str, str] = {}
    for ch in data.iterfind(f"{_M}profiles/{_M}profile/{_M}channels/{_M}channel"):
        field_name = ch.get("fieldName") or ""
        if field_name not in CHANNEL_OF_FIELD:
            raise WireError("channel/@fieldName", field_name, f"one of {sorted(CHANNEL_OF_FIELD)}")
        if ch.get("units") != "kWh":
            raise WireError("channel/@units", ch.get("units"), "kWh")
        channels[ch.get("index") or ""] = CHANNEL_OF_FIELD[field_name]
    values = []
    for block in data.iterfind(f"{_M}blocks/{_M}block"):
        meter = _text(block, "meterID") or ""
        if meter != esi_id:
            raise WireError("block/meterID", meter, f"the meter asked for ({esi_id})")
        start = _from_iso(_text(block, "intervalStart") or "", "intervalStart")
        for reading in block.iterfind(f"{_M}readings/{_M}reading"):
            index = reading.get("channel") or ""
            if index not in channels:
                raise WireError("reading/@channel", index, f"a channel of the profile ({sorted(channels)})")
            values.append(IntervalValue(int(start), length, channels[index], wh_of(reading.text, "reading"),
                                        reading.get("status") or ""))
    header = _header(xml)
    remaining = header.get("ObjectsRemaining", "0") if header is not None else "0"
    if not remaining.isdigit():
        raise WireError("ObjectsRemaining", remaining, "a count of 0 or more")
    next_start = None
    if int(remaining) > 0:
        last = header.get("LastSent") if header is not None else None
        if not last:
            raise WireError("LastSent", last, "required when ObjectsRemaining > 0")
        next_start = int(_from_iso(last, "LastSent")) + INTERVAL_S
    return IntervalPage(esi_id, tuple(values), next_start)


def encode_read_refused(operation: str, refused: ReadRefused) -> bytes:
    env, body = _envelope({"AppName": "headend"})
    resp = etree.SubElement(body, _M + f"{operation}Response")
    result = etree.SubElement(resp, _M + f"{operation}Result")
    err = _sub(result, "errorObject", errorCode="rejected" if refused.permanent else "error")
    _sub(err, "errorString", refused.reason)
    if refused.retry_after_s is not None:
        _sub(err, "retryAfter", f"{refused.retry_after_s:.3f}")
    return _doc(env)


def _refusal(err: etree._Element) -> ReadRefused:
    retry = _text(err, "retryAfter", required=False)
    try:
        retry_after = float(retry) if retry else None
    except ValueError:
        raise WireError("errorObject/retryAfter", retry, "seconds") from None
    return ReadRefused(_text(err, "errorString", required=False) or "head-end error",
                       retry_after_s=retry_after, permanent=err.get("errorCode") == "rejected")


# ------------------------------------------------------------------ on-demand read


def encode_initiate_read(req: HeadEndRequest, response_url: str, app_name: str = "han-gateway") -> bytes:
    env, body = _envelope({"AppName": app_name, "AppVersion": "0.1", "MessageID": req.transaction_id,
                           "TimeStamp": _iso(datetime.now(UTC).timestamp())})
    op = etree.SubElement(body, _M + INITIATE_READ)
    _sub(_sub(op, "meterIDs"), "meterID", req.esi_id)
    _sub(op, "responseURL", response_url)
    _sub(op, "transactionID", req.transaction_id)
    _sub(op, "expirationTime", _iso(req.expires_at))
    return _doc(env)


def decode_initiate_read(op: etree._Element) -> tuple[HeadEndRequest, str]:
    """(the meter_read request, responseURL) of a parsed InitiateMeterReadingsByMeterID."""
    ids = op.find(_M + "meterIDs")
    meters = [] if ids is None else [el.text or "" for el in ids.iterfind(_M + "meterID")]
    if len(meters) != 1 or not meters[0]:
        raise WireError("meterIDs", meters, "exactly one meterID per transactionID")
    txid = _text(op, "transactionID") or ""
    return (HeadEndRequest(transaction_id=txid, esi_id=meters[0], kind=HeadEndRequestKind.METER_READ,
                           expires_at=_from_iso(_text(op, "expirationTime") or "", "expirationTime")),
            _text(op, "responseURL") or "")


def encode_initiate_response(ack: Ack) -> bytes:
    env, body = _envelope({"AppName": "headend", "MessageID": ack.transaction_id})
    resp = etree.SubElement(body, _M + f"{INITIATE_READ}Response")
    result = etree.SubElement(resp, _M + f"{INITIATE_READ}Result")
    if ack.status.value != "ok":
        err = _sub(result, "errorObject", objectID=ack.transaction_id, errorCode=ack.status.value)
        _sub(err, "errorString", ack.reason or ack.status.value)
        if ack.retry_after_s is not None:
            _sub(err, "retryAfter", f"{ack.retry_after_s:.3f}")
    return _doc(env)


def decode_initiate_response(xml: bytes, transaction_id: str) -> Ack:
    resp = _body_child(xml)
    if resp.tag != _M + f"{INITIATE_READ}Response":
        raise WireError("response", etree.QName(resp).localname, f"{INITIATE_READ}Response")
    result = resp.find(_M + f"{INITIATE_READ}Result")
    if result is None:
        raise WireError("result", None, f"{INITIATE_READ}Response must hold its Result element")
    err = result.find(_M + "errorObject")
    if err is None:
        return Ack(transaction_id, AckStatus.OK)
    code = err.get("errorCode", "error")
    try:
        status = AckStatus(code)
    except ValueError as exc:
        raise WireError("errorObject/@errorCode", code, "rejected|busy|error") from exc
    retry = _text(err, "retryAfter", required=False)
    return Ack(transaction_id, status, _text(err, "errorString", required=False), float(retry) if retry else None)


def request_operation(xml: bytes) -> etree._Element:
    """The operation element of an MR_Server request (one of ours, else WireError)."""
    op = _body_child(xml)
    q = etree.QName(op)
    if q.namespace != MS_NS or q.localname not in (GET_INTERVALS, INITIATE_READ):
        raise WireError("operation", q.localname, f"{GET_INTERVALS} or {INITIATE_READ} (MR_Server)")
    return op


def encode_reading_changed(note: Notification) -> bytes:
    if note.register is None:
        raise WireError("register", None, "a meter_read notification carries the meter's registers")
    env, body = _envelope({"AppName": "headend", "MessageID": note.transaction_id})
    el = etree.SubElement(body, _M + READING_CHANGED)
    read = _sub(_sub(el, "changedMeterReads"), "meterReading")
    reg = note.register
    _sub(read, "meterID", note.esi_id)
    _sub(read, "readingDate", _iso(reg.read_at))
    _sub(read, "posKWh", kwh(reg.delivered_wh))
    if reg.received_wh is not None:
        _sub(read, "negKWh", kwh(reg.received_wh))
    if reg.demand_w is not None:
        _sub(read, "kW", kwh(reg.demand_w))
    _sub(el, "transactionID", note.transaction_id)
    return _doc(env)


def decode_reading_changed(xml: bytes) -> Notification | None:
    """A ReadingChangedNotification as a `meter_read` notification; None for any other body."""
    el = _body_child(xml)
    if el.tag != _M + READING_CHANGED:
        return None
    reads = el.findall(f"{_M}changedMeterReads/{_M}meterReading")
    if len(reads) != 1:
        raise WireError("changedMeterReads", len(reads), "one meterReading per transactionID")
    read = reads[0]
    neg = _text(read, "negKWh", required=False)
    kw = _text(read, "kW", required=False)
    at = _from_iso(_text(read, "readingDate") or "", "readingDate")
    register = RegisterValue(int(at), wh_of(_text(read, "posKWh"), "posKWh"),
                             None if neg is None else wh_of(neg, "negKWh"), None if kw is None else wh_of(kw, "kW"))
    return Notification(NoteKind.METER_READ, _text(el, "transactionID") or "", _text(read, "meterID") or "", at,
                        register=register)
