"""The compact binary protocol of the cellular head-end (TNMP's default), declared with construct.

Every frame is length-prefixed (uint32 big-endian) and carries a type and a sequence number; the
peer answers SUBMIT with an ACK of the same sequence. SE frames travel raw (the head-end does not
look inside). Results are not pushed: as Itron-style head-ends require, the client POLLs and gets
RESULTS, then CONFIRMs the result ids it has stored; the head-end keeps (and resends) unconfirmed
results, so a lost RESULTS frame only delays them.

Usage (issue 16): a READ asks for one meter's 15-minute values starting in [start, end) (after
``last_received`` when a page went before), at most ``max_intervals`` interval starts; the head-end
answers at once with INTERVALS of the same sequence: a status (``ok`` or a refusal with its reason
and retry-after), the values (start, length, channel 0 consumption / 1 generation, quality 0 actual
/ 1 estimated / 2 missing, Wh) and ``next_start`` (-1: nothing more; else where the next READ
starts: the head-end stopped at its page size). The on-demand register read is a SUBMIT of kind
``meter_read`` (ACKed), answered by a RESULT of kind ``meter_read`` carrying a ``Register``
structure in its ``frame`` blob (read_at, delivered Wh, received Wh, demand W; -1 unknown).

The meter's HAN inventory (issue 13) is a SUBMIT of kind ``han_inventory`` (ACKed like any other);
once the meter answered, a RESULT of kind ``inventory`` carries it in its ``frame`` blob as an
``Inventory`` structure (meter id, then one ``Registration`` per device), fetched and confirmed like
every result.
"""

from __future__ import annotations

import math
from typing import Any

from construct import (
    Enum,
    Float64b,
    GreedyBytes,
    Int8ub,
    Int16sb,
    Int16ub,
    Int32sb,
    Int32ub,
    Int64sb,
    PascalString,
    Prefixed,
    PrefixedArray,
    StreamError,
    Struct,
    Switch,
    this,
)
from construct.core import ConstructError

from ams_adapters.wire.common import (
    Ack,
    AckStatus,
    HanRegistration,
    HeadEndRequest,
    HeadEndRequestKind,
    NoteKind,
    Notification,
    WireError,
)
from ams_adapters.wire.reads import IntervalPage, IntervalValue, ReadRefused, RegisterValue

MAX_FRAME = 1 << 20
LENGTH = Int32ub
Str = PascalString(Int16ub, "utf8")
Blob = Prefixed(Int16ub, GreedyBytes)

Request = Struct(
    "transaction_id" / Str, "esi_id" / Str, "kind" / Str, "expires_at" / Float64b, "target" / Str,
    "eui64" / Str, "cluster_id" / Int16ub, "se_version" / Str, "frame" / Blob, "link_key" / Blob,
    "join_window_s" / Int32ub,
)
AckBody = Struct("status" / Str, "reason" / Str, "retry_after_ms" / Int32ub)
Poll = Struct("max_results" / Int16ub)
Result = Struct(
    "result_id" / Int32ub, "kind" / Str, "transaction_id" / Str, "esi_id" / Str, "at" / Float64b,
    "state" / Str, "eui64" / Str, "reason" / Str, "cluster_id" / Int32sb, "frame" / Blob,
)
Results = Struct("results" / PrefixedArray(Int16ub, Result))
Confirm = Struct("result_ids" / PrefixedArray(Int16ub, Int32ub))
# Unknown values: "" for text, NaN for last_seen, -32768 for lqi/rssi.
UNKNOWN_INT = -32768
Registration = Struct(
    "eui64" / Str, "state" / Str, "device_type" / Str, "se_version" / Str, "last_seen" / Float64b,
    "lqi" / Int16sb, "rssi" / Int16sb, "reason" / Str,
)
Inventory = Struct("meter_id" / Str, "devices" / PrefixedArray(Int16ub, Registration))
NONE = -1  # READ/INTERVALS/Register: no value
Read = Struct("esi_id" / Str, "start" / Int64sb, "end" / Int64sb, "last_received" / Int64sb,
              "max_intervals" / Int16ub)
Interval = Struct("start" / Int64sb, "length_s" / Int32ub, "channel" / Int8ub, "quality" / Int8ub,
                  "value_wh" / Int64sb)
Intervals = Struct("status" / Str, "reason" / Str, "retry_after_ms" / Int32ub, "esi_id" / Str,
                   "next_start" / Int64sb, "intervals" / PrefixedArray(Int16ub, Interval))
Register = Struct("read_at" / Int64sb, "delivered_wh" / Int64sb, "received_wh" / Int64sb, "demand_w" / Int64sb)
CHANNEL_CODES = ("consumption", "generation")
QUALITY_CODES = ("actual", "estimated", "missing")
MessageType = Enum(Int8ub, SUBMIT=1, ACK=2, POLL=3, RESULTS=4, CONFIRM=5, READ=6, INTERVALS=7)
Frame = Struct(
    "type" / MessageType,
    "seq" / Int32ub,
    "body" / Switch(this.type, {"SUBMIT": Request, "ACK": AckBody, "POLL": Poll, "RESULTS": Results,
                                "CONFIRM": Confirm, "READ": Read, "INTERVALS": Intervals}),
)


def pack(frame_type: str, seq: int, body: dict[str, Any]) -> bytes:
    data: bytes = Frame.build({"type": frame_type, "seq": seq, "body": body})
    return bytes(LENGTH.build(len(data))) + data


def frame_length(header: bytes) -> int:
    n: int = LENGTH.parse(header)
    if n > MAX_FRAME:
        raise WireError("length", n, f"at most {MAX_FRAME} bytes")
    return n


def unpack(data: bytes) -> tuple[str, int, Any]:
    try:
        f = Frame.parse(data)
    except (ConstructError, StreamError) as exc:
        raise WireError("frame", data[:16].hex(),
                        f"a SUBMIT/ACK/POLL/RESULTS/CONFIRM/READ/INTERVALS frame ({exc})") from exc
    return str(f.type), int(f.seq), f.body


def request_body(req: HeadEndRequest) -> dict[str, Any]:
    return {"transaction_id": req.transaction_id, "esi_id": req.esi_id, "kind": req.kind.value,
            "expires_at": req.expires_at, "target": req.target, "eui64": req.eui64 or "",
            "cluster_id": req.cluster_id, "se_version": req.se_version, "frame": req.frame,
            "link_key": req.link_key or b"", "join_window_s": req.join_window_s or 0}


def request_from(body: Any) -> HeadEndRequest:
    try:
        kind = HeadEndRequestKind(body.kind)
    except ValueError as exc:
        raise WireError("kind", body.kind, f"one of {[k.value for k in HeadEndRequestKind]}") from exc
    return HeadEndRequest(
        transaction_id=body.transaction_id, esi_id=body.esi_id, kind=kind, expires_at=body.expires_at,
        target=body.target, eui64=body.eui64 or None, cluster_id=body.cluster_id, frame=bytes(body.frame),
        se_version=body.se_version, link_key=bytes(body.link_key) or None, join_window_s=body.join_window_s or None)


def ack_body(ack: Ack) -> dict[str, Any]:
    return {"status": ack.status.value, "reason": ack.reason or "",
            "retry_after_ms": int((ack.retry_after_s or 0) * 1000)}


def ack_from(txid: str, body: Any) -> Ack:
    try:
        status = AckStatus(body.status)
    except ValueError as exc:
        raise WireError("status", body.status, "ok|rejected|busy|error") from exc
    return Ack(txid, status, body.reason or None, body.retry_after_ms / 1000 if body.retry_after_ms else None)


def result_body(result_id: int, n: Notification) -> dict[str, Any]:
    frame = inventory_blob(n) if n.kind is NoteKind.INVENTORY else register_blob(n) if n.kind is NoteKind.METER_READ \
        else n.frame or b""
    return {"result_id": result_id, "kind": n.kind.value, "transaction_id": n.transaction_id, "esi_id": n.esi_id,
            "at": n.at, "state": n.state or "", "eui64": n.eui64 or "", "reason": n.reason or "",
            "cluster_id": -1 if n.cluster_id is None else n.cluster_id, "frame": frame}


def inventory_blob(n: Notification) -> bytes:
    def number(value: int | None) -> int:
        return UNKNOWN_INT if value is None else value

    devices = [{"eui64": r.eui64, "state": r.state, "device_type": r.device_type or "",
                "se_version": r.se_version or "", "last_seen": math.nan if r.last_seen is None else r.last_seen,
                "lqi": number(r.lqi), "rssi": number(r.rssi), "reason": r.reason or ""} for r in n.registrations]
    try:
        blob: bytes = Inventory.build({"meter_id": n.meter_id or "", "devices": devices})
    except ConstructError as exc:
        raise WireError("registrations", len(devices), f"an Inventory structure ({exc})") from exc
    return blob


def _registrations(blob: bytes) -> tuple[str | None, tuple[HanRegistration, ...]]:
    try:
        inv = Inventory.parse(blob)
    except (ConstructError, StreamError) as exc:
        raise WireError("frame", blob[:16].hex(), f"an Inventory structure ({exc})") from exc

    def number(value: int) -> int | None:
        return None if value == UNKNOWN_INT else int(value)

    return inv.meter_id or None, tuple(HanRegistration(
        eui64=d.eui64, state=d.state, device_type=d.device_type or None, se_version=d.se_version or None,
        last_seen=None if math.isnan(d.last_seen) else d.last_seen, lqi=number(d.lqi), rssi=number(d.rssi),
        reason=d.reason or None) for d in inv.devices)


def result_from(body: Any) -> tuple[int, Notification]:
    try:
        kind = NoteKind(body.kind)
    except ValueError as exc:
        raise WireError("kind", body.kind, f"one of {[k.value for k in NoteKind]}") from exc
    if kind is NoteKind.METER_READ:
        return int(body.result_id), Notification(kind=kind, transaction_id=body.transaction_id, esi_id=body.esi_id,
                                                 at=body.at, register=_register(bytes(body.frame)))
    if kind is NoteKind.INVENTORY:
        meter_id, registrations = _registrations(bytes(body.frame))
        return int(body.result_id), Notification(
            kind=kind, transaction_id=body.transaction_id, esi_id=body.esi_id, at=body.at, meter_id=meter_id,
            registrations=registrations)
    return int(body.result_id), Notification(
        kind=kind, transaction_id=body.transaction_id, esi_id=body.esi_id, at=body.at, state=body.state or None,
        eui64=body.eui64 or None, reason=body.reason or None,
        cluster_id=None if body.cluster_id < 0 else body.cluster_id, frame=bytes(body.frame) or None)


# ------------------------------------------------------------------ usage reads (issue 16)


def _known(value: int | None) -> int:
    return NONE if value is None else value


def read_body(esi_id: str, start: int, end: int, last_received: int | None, max_intervals: int) -> dict[str, Any]:
    return {"esi_id": esi_id, "start": start, "end": end, "last_received": _known(last_received),
            "max_intervals": max_intervals}


def intervals_body(page: IntervalPage | None = None, refused: ReadRefused | None = None) -> dict[str, Any]:
    """An INTERVALS body: the page, or the refusal."""
    if page is None:
        assert refused is not None
        status = "busy" if refused.busy else "rejected" if refused.permanent else "error"
        return {"status": status, "reason": refused.reason, "retry_after_ms": int((refused.retry_after_s or 0) * 1000),
                "esi_id": "", "next_start": NONE, "intervals": []}
    values = [{"start": v.start, "length_s": v.length_s, "channel": CHANNEL_CODES.index(v.channel),
               "quality": QUALITY_CODES.index(v.quality), "value_wh": v.value_wh} for v in page.values]
    return {"status": "ok", "reason": "", "retry_after_ms": 0, "esi_id": page.esi_id,
            "next_start": _known(page.next_start), "intervals": values}


def page_from(body: Any) -> IntervalPage:
    """The page an INTERVALS body carries; `ReadRefused` for a refusal, WireError for bad codes."""
    if body.status != "ok":
        if body.status not in ("busy", "rejected", "error"):
            raise WireError("status", body.status, "ok|rejected|busy|error")
        raise ReadRefused(body.reason or body.status, retry_after_s=body.retry_after_ms / 1000 or None,
                          permanent=body.status == "rejected", busy=body.status == "busy")
    values = []
    for v in body.intervals:
        if v.channel >= len(CHANNEL_CODES):
            raise WireError("channel", v.channel, f"0..{len(CHANNEL_CODES) - 1} ({', '.join(CHANNEL_CODES)})")
        if v.quality >= len(QUALITY_CODES):
            raise WireError("quality", v.quality, f"0..{len(QUALITY_CODES) - 1} ({', '.join(QUALITY_CODES)})")
        values.append(IntervalValue(int(v.start), int(v.length_s), CHANNEL_CODES[v.channel],
                                    int(v.value_wh), QUALITY_CODES[v.quality]))
    return IntervalPage(body.esi_id, tuple(values), None if body.next_start == NONE else int(body.next_start))


def register_blob(n: Notification) -> bytes:
    r = n.register
    if r is None:
        raise WireError("register", None, "a meter_read result carries the meter's registers")
    blob: bytes = Register.build({"read_at": r.read_at, "delivered_wh": r.delivered_wh,
                                  "received_wh": _known(r.received_wh), "demand_w": _known(r.demand_w)})
    return blob


def _register(blob: bytes) -> RegisterValue:
    try:
        r = Register.parse(blob)
    except (ConstructError, StreamError) as exc:
        raise WireError("frame", blob[:16].hex(), f"a Register structure ({exc})") from exc
    return RegisterValue(int(r.read_at), int(r.delivered_wh), None if r.received_wh == NONE else int(r.received_wh),
                         None if r.demand_w == NONE else int(r.demand_w))
