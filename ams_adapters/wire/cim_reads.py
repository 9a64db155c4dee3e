"""IEC 61968-9 MeterReadings in 61968-100 messages (issue 16), in the style of cim.py.

Requests are ``get MeterReadings`` (ENERGY_DATA.md §3.3) on the head-end's request topic:
``Request/GetMeterReadings`` with the meter as ``EndDevice/mRID``, the ReadingTypes wanted
(``ReadingType/mRID``, 18-part codes, §3.4) and, for interval data, the period as
``TimeSchedule/scheduleInterval`` {start, end}.

- **Interval data** (ReadingTypes ``0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0``, 15-minute delta kWh
  delivered, and ``0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0``, received): AsyncReplyFlag false, the
  head-end answers at once on the ReplyAddress with CorrelationID = the request's MessageID: a
  ``reply MeterReadings`` whose ``Payload/MeterReadings/MeterReading`` holds one ``IntervalBlocks``
  per ReadingType (``ReadingType/@ref``), each with ``IntervalReadings`` {``timeStamp`` = the end of
  the interval, as CIM stamps interval data; ``value`` in kWh, three decimals; ``ReadingQualities/
  ReadingQualityType/@ref``}. A head-end stops at its page size with ``Reply/Result`` PARTIAL and
  (ours, 61968-100 has no paging) ``Reply/ID kind="other" objectType="IntervalStart"`` = where the
  next request starts; it is passed back as ``Request/Option`` ``lastReceived``.
- **On-demand read** (the bulk register ReadingTypes ``0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0``,
  kWh delivered, and ``0.0.0.6.1.1.8.0.0.0.0.0.0.0.0.3.38.0``, demand kW): AsyncReplyFlag true with
  ``Request/ID kind="transaction"`` and the ``expirationTime`` as a ``Request/Option``, as for
  get EndDevices: acknowledged at once (``reply MeterReadings`` without payload), the data follows
  on the same ReplyAddress and CorrelationID with ``Reply/ID kind="transaction"`` and
  ``MeterReading/Readings`` {``timeStamp``, ``value``, ``ReadingType/@ref``}.

Quality codes ([I], 61968-9's ``<system>.<category>.<index>`` ReadingQualityType): no quality or
``1.0.0`` actual; ``2.8.0`` estimated (the head-end filled the interval in); ``2.5.259`` missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from ams_adapters.wire.cim import _H, Header, _from_iso, _iso, _message, _opt, _req, _sub, parse
from ams_adapters.wire.common import HeadEndRequest, HeadEndRequestKind, NoteKind, Notification, WireError
from ams_adapters.wire.reads import INTERVAL_S, IntervalPage, IntervalValue, ReadRefused, RegisterValue, kwh, wh_of

GMR_NS = "http://iec.ch/TC57/2011/GetMeterReadings#"
MR_NS = "http://iec.ch/TC57/2011/MeterReadings#"
_G = f"{{{GMR_NS}}}"
_R = f"{{{MR_NS}}}"
NOUN = "MeterReadings"
DELIVERED_15MIN = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
RECEIVED_15MIN = "0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0"
DELIVERED_REGISTER = "0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
RECEIVED_REGISTER = "0.0.0.1.19.1.12.0.0.0.0.0.0.0.0.3.72.0"
DEMAND = "0.0.0.6.1.1.8.0.0.0.0.0.0.0.0.3.38.0"
CHANNEL_OF_TYPE = {DELIVERED_15MIN: "consumption", RECEIVED_15MIN: "generation"}
TYPE_OF_CHANNEL = {v: k for k, v in CHANNEL_OF_TYPE.items()}
REGISTER_TYPES = (DELIVERED_REGISTER, RECEIVED_REGISTER, DEMAND)
QUALITY_OF_CODE = {"1.0.0": "actual", "2.8.0": "estimated", "2.5.259": "missing"}
CODE_OF_QUALITY = {v: k for k, v in QUALITY_OF_CODE.items()}


def _doc(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class MeterReadingsGet:
    """A parsed ``get MeterReadings``: an interval read (`register` False: start, end) or an
    on-demand read (`request` is its meter_read HeadEndRequest)."""

    esi_id: str
    register: bool
    start: int = 0
    end: int = 0
    request: HeadEndRequest | None = None


def encode_get_intervals(message_id: str, reply_address: str, esi_id: str, period: tuple[int, int],
                         last_received: int | None) -> bytes:
    """An interval read of `period` [start, end)."""
    start, end = period
    root, _ = _message(Header("get", NOUN, message_id, reply_address=reply_address, async_reply=False))
    request = _sub(root, _H + "Request")
    get = etree.SubElement(request, _G + "GetMeterReadings", nsmap={None: GMR_NS})
    _sub(_sub(get, _G + "EndDevice"), _G + "mRID", esi_id)
    for code in CHANNEL_OF_TYPE:
        _sub(_sub(get, _G + "ReadingType"), _G + "mRID", code)
    interval = _sub(_sub(get, _G + "TimeSchedule"), _G + "scheduleInterval")
    _sub(interval, _G + "start", _iso(start))
    _sub(interval, _G + "end", _iso(end))
    if last_received is not None:
        option = _sub(request, _H + "Option")
        _sub(option, _H + "name", "lastReceived")
        _sub(option, _H + "value", _iso(last_received))
    return _doc(root)


def encode_get_register(message_id: str, reply_address: str, req: HeadEndRequest) -> bytes:
    if req.kind is not HeadEndRequestKind.METER_READ:
        raise WireError("kind", req.kind.value, "meter_read (get MeterReadings of the registers)")
    root, _ = _message(Header("get", NOUN, message_id, reply_address=reply_address))
    request = _sub(root, _H + "Request")
    get = etree.SubElement(request, _G + "GetMeterReadings", nsmap={None: GMR_NS})
    _sub(_sub(get, _G + "EndDevice"), _G + "mRID", req.esi_id)
    for code in REGISTER_TYPES:
        _sub(_sub(get, _G + "ReadingType"), _G + "mRID", code)
    _sub(request, _H + "ID", req.transaction_id, kind="transaction")
    option = _sub(request, _H + "Option")
    _sub(option, _H + "name", "expirationTime")
    _sub(option, _H + "value", _iso(req.expires_at))
    return _doc(root)


def _option(request: etree._Element, name: str) -> str | None:
    return next((_opt(o, _H + "value") for o in request.iterfind(_H + "Option") if _opt(o, _H + "name") == name),
                None)


def get_meter_readings_from(h: Header, root: etree._Element) -> MeterReadingsGet:
    if h.verb != "get" or h.noun != NOUN:
        raise WireError("Verb/Noun", f"{h.verb}/{h.noun}", "get MeterReadings")
    request = root.find(_H + "Request")
    get = None if request is None else request.find(_G + "GetMeterReadings")
    if request is None or get is None:
        raise WireError("Request/GetMeterReadings", None, "required in get MeterReadings")
    esi_id = _req(get, f"{_G}EndDevice/{_G}mRID")
    types = [el.text or "" for el in get.iterfind(f"{_G}ReadingType/{_G}mRID")]
    known = set(CHANNEL_OF_TYPE) | set(REGISTER_TYPES)
    unknown = [t for t in types if t not in known]
    if not types or unknown:
        raise WireError("ReadingType/mRID", unknown or None, f"one or more of {sorted(known)}")
    if any(t in REGISTER_TYPES for t in types):
        txid = next((el.text for el in request.iterfind(_H + "ID") if el.get("kind") == "transaction"), None)
        if not txid:
            raise WireError("Request/ID", None, 'an ID kind="transaction" in an on-demand get MeterReadings')
        return MeterReadingsGet(esi_id, True, request=HeadEndRequest(
            transaction_id=txid, esi_id=esi_id, kind=HeadEndRequestKind.METER_READ,
            expires_at=_from_iso(_option(request, "expirationTime"), "Option expirationTime")))
    start = int(_from_iso(_req(get, f"{_G}TimeSchedule/{_G}scheduleInterval/{_G}start"), "scheduleInterval/start"))
    end = int(_from_iso(_req(get, f"{_G}TimeSchedule/{_G}scheduleInterval/{_G}end"), "scheduleInterval/end"))
    last = _option(request, "lastReceived")
    if last is not None:
        start = max(start, int(_from_iso(last, "Option lastReceived")) + INTERVAL_S)
    return MeterReadingsGet(esi_id, False, start, end)


# ------------------------------------------------------------------ replies


def encode_intervals(correlation_id: str, message_id: str, page: IntervalPage) -> bytes:
    root, _ = _message(Header("reply", NOUN, message_id, correlation_id=correlation_id))
    reply = _sub(root, _H + "Reply")
    _sub(reply, _H + "Result", "OK" if page.next_start is None else "PARTIAL")
    if page.next_start is not None:
        _sub(reply, _H + "ID", _iso(page.next_start), kind="other", objectType="IntervalStart")
    payload = _sub(root, _H + "Payload")
    readings = etree.SubElement(payload, _R + "MeterReadings", nsmap={None: MR_NS})
    reading = _sub(readings, _R + "MeterReading")
    _sub(_sub(reading, _R + "Meter"), _R + "mRID", page.esi_id)
    blocks: dict[str, etree._Element] = {}
    for v in page.values:
        code = TYPE_OF_CHANNEL.get(v.channel, v.channel)
        block = blocks.get(code)
        if block is None:
            block = blocks[code] = _sub(reading, _R + "IntervalBlocks")
        ir = _sub(block, _R + "IntervalReadings")
        _sub(ir, _R + "timeStamp", _iso(v.start + v.length_s))
        _sub(ir, _R + "value", kwh(v.value_wh))
        if v.quality != "actual":
            _sub(_sub(ir, _R + "ReadingQualities"), _R + "ReadingQualityType",
                 ref=CODE_OF_QUALITY.get(v.quality, v.quality))
    for code, block in blocks.items():
        _sub(block, _R + "ReadingType", ref=code)
    return _doc(root)


def encode_refused(correlation_id: str, message_id: str, refused: ReadRefused) -> bytes:
    root, _ = _message(Header("reply", NOUN, message_id, correlation_id=correlation_id))
    reply = _sub(root, _H + "Reply")
    _sub(reply, _H + "Result", "FAILED")
    err = _sub(reply, _H + "Error")
    _sub(err, _H + "code", "busy" if refused.busy else "rejected" if refused.permanent else "error")
    _sub(err, _H + "details", refused.reason)
    if refused.retry_after_s is not None:
        _sub(err, _H + "retryAfter", f"{refused.retry_after_s:.3f}")
    return _doc(root)


def decode_intervals(xml: bytes, esi_id: str) -> IntervalPage:
    """The head-end's reply to an interval read; `ReadRefused` for FAILED, WireError if malformed."""
    h, root = parse(xml)
    if h.verb != "reply" or h.noun != NOUN:
        raise WireError("Verb/Noun", f"{h.verb}/{h.noun}", "reply MeterReadings")
    result = _req(root, f"{_H}Reply/{_H}Result")
    if result == "FAILED":
        code = _opt(root, f"{_H}Reply/{_H}Error/{_H}code")
        retry = _opt(root, f"{_H}Reply/{_H}Error/{_H}retryAfter")
        try:
            retry_after = float(retry) if retry else None
        except ValueError:
            raise WireError("Error/retryAfter", retry, "seconds") from None
        raise ReadRefused(_opt(root, f"{_H}Reply/{_H}Error/{_H}details") or "FAILED",
                          retry_after_s=retry_after, permanent=code == "rejected", busy=code == "busy")
    if result not in ("OK", "PARTIAL"):
        raise WireError("Result", result, "OK | PARTIAL | FAILED")
    next_start = None
    if result == "PARTIAL":
        cont = next((el.text for el in root.iterfind(f"{_H}Reply/{_H}ID") if el.get("objectType") == "IntervalStart"),
                    None)
        if not cont:
            raise WireError("Reply/ID", None, 'an ID objectType="IntervalStart" with Result PARTIAL')
        next_start = int(_from_iso(cont, "Reply/ID"))
    values = []
    for reading in root.iterfind(f"{_H}Payload/{_R}MeterReadings/{_R}MeterReading"):
        meter = _opt(reading, f"{_R}Meter/{_R}mRID")
        if meter != esi_id:
            raise WireError("MeterReading/Meter/mRID", meter, f"the meter asked for ({esi_id})")
        for block in reading.iterfind(_R + "IntervalBlocks"):
            type_el = block.find(_R + "ReadingType")
            code = "" if type_el is None else type_el.get("ref", "")
            if code not in CHANNEL_OF_TYPE:
                raise WireError("IntervalBlocks/ReadingType/@ref", code, f"one of {sorted(CHANNEL_OF_TYPE)}")
            for ir in block.iterfind(_R + "IntervalReadings"):
                end = int(_from_iso(_req(ir, _R + "timeStamp"), "IntervalReadings/timeStamp"))
                quality_el = ir.find(f"{_R}ReadingQualities/{_R}ReadingQualityType")
                qcode = "1.0.0" if quality_el is None else quality_el.get("ref", "")
                if qcode not in QUALITY_OF_CODE:
                    raise WireError("ReadingQualityType/@ref", qcode, f"one of {sorted(QUALITY_OF_CODE)}")
                values.append(IntervalValue(end - INTERVAL_S, INTERVAL_S, CHANNEL_OF_TYPE[code],
                                            wh_of(_opt(ir, _R + "value"), "value"), QUALITY_OF_CODE[qcode]))
    values.sort(key=lambda v: (v.start, v.channel))
    return IntervalPage(esi_id, tuple(values), next_start)


def encode_register(correlation_id: str, message_id: str, note: Notification) -> bytes:
    """The data reply to an on-demand get MeterReadings: the registers (a meter_read note), or
    FAILED with the head-end's reason (a failed note)."""
    root, _ = _message(Header("reply", NOUN, message_id, correlation_id=correlation_id))
    reply = _sub(root, _H + "Reply")
    ok = note.kind is NoteKind.METER_READ and note.register is not None
    _sub(reply, _H + "Result", "OK" if ok else "FAILED")
    if not ok:
        err = _sub(reply, _H + "Error")
        _sub(err, _H + "code", "failed")
        _sub(err, _H + "details", note.reason or "the meter was not read")
    _sub(reply, _H + "ID", note.transaction_id, kind="transaction")
    if not ok or note.register is None:
        return _doc(root)
    reg = note.register
    payload = _sub(root, _H + "Payload")
    readings = etree.SubElement(payload, _R + "MeterReadings", nsmap={None: MR_NS})
    reading = _sub(readings, _R + "MeterReading")
    _sub(_sub(reading, _R + "Meter"), _R + "mRID", note.esi_id)
    for code, value in ((DELIVERED_REGISTER, reg.delivered_wh), (RECEIVED_REGISTER, reg.received_wh),
                        (DEMAND, reg.demand_w)):
        if value is None:
            continue
        r = _sub(reading, _R + "Readings")
        _sub(r, _R + "timeStamp", _iso(reg.read_at))
        _sub(r, _R + "value", kwh(value))
        _sub(r, _R + "ReadingType", ref=code)
    return _doc(root)


def register_note(h: Header, root: etree._Element) -> Notification | None:
    """The on-demand read (or its failure) a parsed reply carries; None for any other reply (an
    acknowledgement, or interval data, carry no ``Reply/ID kind="transaction"``)."""
    if h.verb != "reply" or h.noun != NOUN:
        return None
    txid = next((el.text for el in root.iterfind(f"{_H}Reply/{_H}ID") if el.get("kind") == "transaction"), None)
    if not txid:
        return None
    result = _req(root, f"{_H}Reply/{_H}Result")
    reading = root.find(f"{_H}Payload/{_R}MeterReadings/{_R}MeterReading")
    if result != "OK" or reading is None:
        return Notification(NoteKind.FAILED, txid, "", datetime.now(UTC).timestamp(),
                            reason=_opt(root, f"{_H}Reply/{_H}Error/{_H}details") or f"Result {result}")
    values: dict[str, tuple[int, float]] = {}
    for r in reading.iterfind(_R + "Readings"):
        type_el = r.find(_R + "ReadingType")
        code = "" if type_el is None else type_el.get("ref", "")
        if code not in REGISTER_TYPES:
            raise WireError("Readings/ReadingType/@ref", code, f"one of {list(REGISTER_TYPES)}")
        values[code] = (wh_of(_opt(r, _R + "value"), "value"), _from_iso(_req(r, _R + "timeStamp"), "timeStamp"))
    if DELIVERED_REGISTER not in values:
        raise WireError("Readings", None, f"a reading of {DELIVERED_REGISTER} (the delivered register)")
    delivered, at = values[DELIVERED_REGISTER]
    register = RegisterValue(int(at), delivered, values.get(RECEIVED_REGISTER, (None, 0))[0],
                             values.get(DEMAND, (None, 0))[0])
    return Notification(NoteKind.METER_READ, txid, _opt(reading, f"{_R}Meter/{_R}mRID") or "", at, register=register)
