"""The compact binary protocol of the cellular head-end (TNMP's default), declared with construct.

Every frame is length-prefixed (uint32 big-endian) and carries a type and a sequence number; the
peer answers SUBMIT with an ACK of the same sequence. SE frames travel raw (the head-end does not
look inside). Results are not pushed: as Itron-style head-ends require, the client POLLs and gets
RESULTS, then CONFIRMs the result ids it has stored; the head-end keeps (and resends) unconfirmed
results, so a lost RESULTS frame only delays them.
"""

from __future__ import annotations

from typing import Any

from construct import (
    Enum,
    Float64b,
    GreedyBytes,
    Int8ub,
    Int16ub,
    Int32sb,
    Int32ub,
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
    HeadEndRequest,
    HeadEndRequestKind,
    NoteKind,
    Notification,
    WireError,
)

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
MessageType = Enum(Int8ub, SUBMIT=1, ACK=2, POLL=3, RESULTS=4, CONFIRM=5)
Frame = Struct(
    "type" / MessageType,
    "seq" / Int32ub,
    "body" / Switch(this.type, {"SUBMIT": Request, "ACK": AckBody, "POLL": Poll, "RESULTS": Results,
                                "CONFIRM": Confirm}),
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
        raise WireError("frame", data[:16].hex(), f"a SUBMIT/ACK/POLL/RESULTS/CONFIRM frame ({exc})") from exc
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
    return {"result_id": result_id, "kind": n.kind.value, "transaction_id": n.transaction_id, "esi_id": n.esi_id,
            "at": n.at, "state": n.state or "", "eui64": n.eui64 or "", "reason": n.reason or "",
            "cluster_id": -1 if n.cluster_id is None else n.cluster_id, "frame": n.frame or b""}


def result_from(body: Any) -> tuple[int, Notification]:
    try:
        kind = NoteKind(body.kind)
    except ValueError as exc:
        raise WireError("kind", body.kind, f"one of {[k.value for k in NoteKind]}") from exc
    return int(body.result_id), Notification(
        kind=kind, transaction_id=body.transaction_id, esi_id=body.esi_id, at=body.at, state=body.state or None,
        eui64=body.eui64 or None, reason=body.reason or None,
        cluster_id=None if body.cluster_id < 0 else body.cluster_id, frame=bytes(body.frame) or None)
