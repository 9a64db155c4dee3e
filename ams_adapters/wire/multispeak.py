"""MultiSpeak 4.1 SOAP messages for HAN (HAN_Server, DR_Server) and their NOT_Server callbacks.

Built and checked with lxml element by element (never string templates). Operation and element
names follow MultiSpeak 4.1.6 (HEADENDS.md §7.2): ``InitiateInHomeDisplayMessage``,
``CancelInHomeDisplayMessage``, ``InitiateHANPricing``, ``InitiateDemandResponseEvent``,
``CancelDemandResponseEvent``, ``InitiateHANRegistration``/``CancelHANRegistration`` with
``responseURL``, ``transactionID`` and ``expirationTime``; results come back as
``IHDMessageStatusNotification``, ``IHDMessageConfirmedNotification``,
``DemandResponseEventNotification``, ``HANRegistrationNotification``. Two operations MultiSpeak 4.1
does not name are ours and marked so: ``InitiateHANCommissioning`` (HAN init; MultiSpeak has
HANCommissioningNotification) and ``CancelHANCommissioning`` (decommission). The SE command rides
in ``seCommand`` as one element per SE field (camelCase of the SE field name).

The meter's HAN inventory (issue 13) is MultiSpeak 4.1.6's ``InitiateHANRegistrationStatusRequest``
on HAN_Server; the head-end asks the meter and answers with NOT_Server's
``HANRegistrationNotification(HANRegistration[], transactionID)``: ``meterID`` and one
``HANRegistrations/HANRegistration`` per device (``hanDeviceID``, ``registrationStatus``,
``deviceType``, ``seVersion``, ``lastCommunication``, ``lqi``, ``rssi``, ``errorString``; only
what the meter knows).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from ams_adapters.wire.common import (
    Ack,
    AckStatus,
    HanRegistration,
    HeadEndRequest,
    HeadEndRequestKind,
    NoteKind,
    Notification,
    WireError,
    camel,
    read_se_command,
)

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MS_NS = "http://www.multispeak.org/Version_4.1_Release"
_S = f"{{{SOAP_NS}}}"
_M = f"{{{MS_NS}}}"
NSMAP = {"soap": SOAP_NS, None: MS_NS}

OPERATION_OF_KIND: dict[HeadEndRequestKind, str] = {
    HeadEndRequestKind.TEXT: "InitiateInHomeDisplayMessage",
    HeadEndRequestKind.CANCEL_TEXT: "CancelInHomeDisplayMessage",
    HeadEndRequestKind.PRICE: "InitiateHANPricing",
    HeadEndRequestKind.LOAD_CONTROL: "InitiateDemandResponseEvent",
    HeadEndRequestKind.CANCEL_LOAD_CONTROL: "CancelDemandResponseEvent",
    HeadEndRequestKind.CANCEL_ALL_LOAD_CONTROL: "CancelDemandResponseEvent",
    HeadEndRequestKind.INITIALIZE_HAN: "InitiateHANCommissioning",
    HeadEndRequestKind.PROVISION_DEVICE: "InitiateHANRegistration",
    HeadEndRequestKind.DELETE_DEVICE: "CancelHANRegistration",
    HeadEndRequestKind.CLEAR_DEVICES: "CancelHANRegistration",
    HeadEndRequestKind.DECOMMISSION_HAN: "CancelHANCommissioning",
    HeadEndRequestKind.HAN_INVENTORY: "InitiateHANRegistrationStatusRequest",
}
ENDPOINT_OF_KIND: dict[HeadEndRequestKind, str] = {
    k: ("DR_Server" if k in (HeadEndRequestKind.LOAD_CONTROL, HeadEndRequestKind.CANCEL_LOAD_CONTROL,
                             HeadEndRequestKind.CANCEL_ALL_LOAD_CONTROL)
        else "MR_Server" if k is HeadEndRequestKind.METER_READ else "HAN_Server")
    for k in HeadEndRequestKind
}
"""The on-demand read (meter_read) is MR_Server's InitiateMeterReadingsByMeterID
(ams_adapters/wire/multispeak_reads.py), not a HAN operation."""
OPERATIONS = frozenset(OPERATION_OF_KIND.values())
# MultiSpeak 4.1's ...ToGroup forms (HAN_Server / DR_Server): one payload for many meters. MultiSpeak
# addresses a group established beforehand (EstablishHANDeviceGroup); ours names its members
# inline (hanInterfaceID + transactionID each) under an ad-hoc groupID, so that every member keeps
# its own transaction and its own notifications ("one or more notifications" per group request).
GROUP_OPERATION_OF_KIND: dict[HeadEndRequestKind, str] = {
    HeadEndRequestKind.TEXT: "InitiateInHomeDisplayMessageToGroup",
    HeadEndRequestKind.CANCEL_TEXT: "CancelInHomeDisplayMessageToGroup",
    HeadEndRequestKind.LOAD_CONTROL: "InitiateDemandResponseEventToGroup",
    HeadEndRequestKind.CANCEL_LOAD_CONTROL: "CancelDemandResponseEventToGroup",
    HeadEndRequestKind.CANCEL_ALL_LOAD_CONTROL: "CancelDemandResponseEventToGroup",
}
GROUP_OPERATIONS = frozenset(GROUP_OPERATION_OF_KIND.values())
NOTIFICATIONS = frozenset({"IHDMessageStatusNotification", "IHDMessageConfirmedNotification",
                           "DemandResponseEventNotification", "HANRegistrationNotification",
                           "PricingTiersChangedNotification", "MeterEventNotification"})


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_iso(text: str, name: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise WireError(name, text, "an ISO 8601 date-time") from exc


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, _M + tag, attrs)
    if text is not None:
        el.text = text
    return el


def _envelope(header_fields: dict[str, str]) -> tuple[etree._Element, etree._Element]:
    env = etree.Element(_S + "Envelope", nsmap=NSMAP)
    header = etree.SubElement(env, _S + "Header")
    etree.SubElement(header, _M + "MultiSpeakMsgHeader", header_fields)
    body = etree.SubElement(env, _S + "Body")
    return env, body


def _body_child(xml: bytes) -> etree._Element:
    try:
        root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise WireError("envelope", xml[:80], f"well-formed XML ({exc})") from exc
    if root.tag != _S + "Envelope":
        raise WireError("Envelope", root.tag, f"a SOAP 1.1 Envelope ({SOAP_NS})")
    body = root.find(_S + "Body")
    if body is None or len(body) != 1:
        raise WireError("Body", None if body is None else len(body), "a SOAP Body with exactly one element")
    return body[0]


def _text(el: etree._Element, name: str, required: bool = True) -> str | None:
    child = el.find(_M + name)
    if child is None or child.text is None:
        if required:
            raise WireError(name, None, f"required in {etree.QName(el).localname}")
        return None
    return str(child.text)


# ------------------------------------------------------------------ requests


def encode_request(req: HeadEndRequest, response_url: str, app_name: str = "han-gateway") -> bytes:
    env, body = _envelope({"AppName": app_name, "AppVersion": "0.1", "MessageID": req.transaction_id,
                           "TimeStamp": _iso(datetime.now(UTC).timestamp())})
    op = etree.SubElement(body, _M + OPERATION_OF_KIND[req.kind])
    _sub(op, "hanInterfaceID", req.esi_id)
    _sub(op, "requestKind", req.kind.value)
    _sub(op, "target", req.target)
    if req.eui64:
        _sub(op, "hanDeviceID", req.eui64)
    if req.kind.provisioning:
        if req.link_key is not None:
            _sub(op, "HANSecurityToken", req.link_key.hex())
        if req.join_window_s is not None:
            _sub(op, "timeOut", str(req.join_window_s))
    elif req.kind.carries_se_command:
        _sub(op, "seVersion", req.se_version)
        cmd = _sub(op, "seCommand", cluster=f"0x{req.cluster_id:04X}", name=req.command)
        for name, value in req.fields.items():
            _sub(cmd, camel(name), str(value))
    _sub(op, "transactionID", req.transaction_id)
    _sub(op, "responseURL", response_url)
    _sub(op, "expirationTime", _iso(req.expires_at))
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def decode_request(xml: bytes) -> tuple[HeadEndRequest, str]:
    """(request, responseURL); raises WireError for anything the format does not allow."""
    op = _body_child(xml)
    q = etree.QName(op)
    if q.namespace != MS_NS or q.localname not in OPERATIONS:
        raise WireError("operation", q.localname, f"one of {sorted(OPERATIONS)}")
    req = _request_of(op, q.localname, _text(op, "hanInterfaceID") or "", _text(op, "transactionID") or "")
    return req, _text(op, "responseURL") or ""


def decode_requests(xml: bytes) -> tuple[list[HeadEndRequest], str, str]:
    """A single operation or a ...ToGroup one: (one request per meter, responseURL, operation)."""
    op = _body_child(xml)
    q = etree.QName(op)
    if q.namespace != MS_NS or q.localname not in OPERATIONS | GROUP_OPERATIONS:
        raise WireError("operation", q.localname, f"one of {sorted(OPERATIONS | GROUP_OPERATIONS)}")
    if q.localname in OPERATIONS:
        return ([_request_of(op, q.localname, _text(op, "hanInterfaceID") or "", _text(op, "transactionID") or "")],
                _text(op, "responseURL") or "", q.localname)
    members = op.find(_M + "members")
    if members is None or not len(members):
        raise WireError("members", None, f"at least one member in {q.localname}")
    reqs = []
    for member in members:
        if member.tag != _M + "member":
            raise WireError("members", etree.QName(member).localname, "member elements only")
        reqs.append(_request_of(op, q.localname, _text(member, "hanInterfaceID") or "",
                                _text(member, "transactionID") or ""))
    return reqs, _text(op, "responseURL") or "", q.localname


def _request_of(op: etree._Element, operation: str, esi_id: str, transaction_id: str) -> HeadEndRequest:
    kind_text = _text(op, "requestKind")
    try:
        kind = HeadEndRequestKind(kind_text or "")
    except ValueError as exc:
        raise WireError("requestKind", kind_text, f"one of {[k.value for k in HeadEndRequestKind]}") from exc
    expected = GROUP_OPERATION_OF_KIND.get(kind) if operation in GROUP_OPERATIONS else OPERATION_OF_KIND[kind]
    if expected != operation:
        raise WireError("requestKind", kind.value, f"a kind carried by {operation}")
    fields: dict[str, Any] = {}
    cluster_id, command, se_version = 0, "", "1.1"
    if kind.carries_se_command:
        cluster_id, command, fields = read_se_command(op.find(_M + "seCommand"), operation)
        se_version = _text(op, "seVersion") or "1.1"
    key_hex = _text(op, "HANSecurityToken", required=False)
    window = _text(op, "timeOut", required=False)
    try:
        link_key = bytes.fromhex(key_hex) if key_hex else None
        join_window = int(window) if window else None
    except ValueError as exc:
        raise WireError("HANSecurityToken/timeOut", (key_hex, window), "hex key, integer seconds") from exc
    if not transaction_id:
        raise WireError("transactionID", None, f"required in {operation}")
    if not esi_id:
        raise WireError("hanInterfaceID", None, f"required in {operation}")
    return HeadEndRequest(
        transaction_id=transaction_id, esi_id=esi_id,
        kind=kind, expires_at=_from_iso(_text(op, "expirationTime") or "", "expirationTime"),
        target=_text(op, "target") or "meter", eui64=_text(op, "hanDeviceID", required=False),
        cluster_id=cluster_id, command=command, fields=fields, se_version=se_version,
        link_key=link_key, join_window_s=join_window)


# ------------------------------------------------------------------ ...ToGroup


def group_key(req: HeadEndRequest) -> tuple[object, ...] | None:
    """Requests with equal keys carry the same payload and may travel as one ...ToGroup
    operation; None for requests that never do (provisioning, prices, one device)."""
    if req.kind not in GROUP_OPERATION_OF_KIND or req.eui64:
        return None
    return (req.kind, req.target, req.se_version, req.cluster_id, req.command,
            tuple(sorted((k, str(v)) for k, v in req.fields.items())), _iso(req.expires_at))


def encode_group_request(reqs: list[HeadEndRequest], response_url: str, app_name: str = "han-gateway") -> bytes:
    """One ...ToGroup operation for requests of one `group_key`."""
    first = reqs[0]
    if any(group_key(r) != group_key(first) for r in reqs) or group_key(first) is None:
        raise WireError("members", len(reqs), "requests of one kind and one payload (group_key)")
    env, body = _envelope({"AppName": app_name, "AppVersion": "0.1", "MessageID": f"grp-{first.transaction_id}",
                           "TimeStamp": _iso(datetime.now(UTC).timestamp())})
    op = etree.SubElement(body, _M + GROUP_OPERATION_OF_KIND[first.kind])
    _sub(op, "groupID", f"grp-{first.transaction_id}")
    members = _sub(op, "members")
    for r in reqs:
        member = _sub(members, "member")
        _sub(member, "hanInterfaceID", r.esi_id)
        _sub(member, "transactionID", r.transaction_id)
    _sub(op, "requestKind", first.kind.value)
    _sub(op, "target", first.target)
    _sub(op, "seVersion", first.se_version)
    cmd = _sub(op, "seCommand", cluster=f"0x{first.cluster_id:04X}", name=first.command)
    for name, value in first.fields.items():
        _sub(cmd, camel(name), str(value))
    _sub(op, "responseURL", response_url)
    _sub(op, "expirationTime", _iso(first.expires_at))
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def encode_group_response(operation: str, acks: list[Ack]) -> bytes:
    """Members that were not taken get an errorObject (objectID = their transactionID)."""
    env, body = _envelope({"AppName": "headend"})
    resp = etree.SubElement(body, _M + f"{operation}Response")
    result = etree.SubElement(resp, _M + f"{operation}Result")
    for ack in acks:
        if ack.status is not AckStatus.OK:
            err = _sub(result, "errorObject", objectID=ack.transaction_id, errorCode=ack.status.value)
            _sub(err, "errorString", ack.reason or ack.status.value)
            if ack.retry_after_s is not None:
                _sub(err, "retryAfter", f"{ack.retry_after_s:.3f}")
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def decode_group_response(xml: bytes, transaction_ids: list[str]) -> list[Ack]:
    """One Ack per member, in order: OK unless an errorObject names its transaction."""
    resp = _body_child(xml)
    local = etree.QName(resp).localname
    if not local.endswith("Response") or local[: -len("Response")] not in GROUP_OPERATIONS:
        raise WireError("response", local, "<Operation>Response of a ...ToGroup operation")
    result = resp.find(_M + local[: -len("Response")] + "Result")
    if result is None:
        raise WireError("result", None, f"{local} must hold its Result element")
    errors: dict[str, Ack] = {}
    for err in result.findall(_M + "errorObject"):
        txid = err.get("objectID", "")
        if txid not in transaction_ids:
            raise WireError("errorObject/@objectID", txid, "the transactionID of a member of this group")
        code = err.get("errorCode", "error")
        try:
            status = AckStatus(code)
        except ValueError as exc:
            raise WireError("errorObject/@errorCode", code, "rejected|busy|error") from exc
        retry = _text(err, "retryAfter", required=False)
        errors[txid] = Ack(txid, status, _text(err, "errorString", required=False), float(retry) if retry else None)
    return [errors.get(t, Ack(t, AckStatus.OK)) for t in transaction_ids]


def encode_response(operation: str, ack: Ack) -> bytes:
    env, body = _envelope({"AppName": "headend", "MessageID": ack.transaction_id})
    resp = etree.SubElement(body, _M + f"{operation}Response")
    result = etree.SubElement(resp, _M + f"{operation}Result")
    if ack.status is not AckStatus.OK:
        err = _sub(result, "errorObject", objectID=ack.transaction_id, errorCode=ack.status.value)
        _sub(err, "errorString", ack.reason or ack.status.value)
        if ack.retry_after_s is not None:
            _sub(err, "retryAfter", f"{ack.retry_after_s:.3f}")
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def decode_response(xml: bytes, transaction_id: str) -> Ack:
    resp = _body_child(xml)
    local = etree.QName(resp).localname
    if not local.endswith("Response") or local[: -len("Response")] not in OPERATIONS:
        raise WireError("response", local, "<Operation>Response of a HAN/DR operation")
    result = resp.find(_M + local[: -len("Response")] + "Result")
    if result is None:
        raise WireError("result", None, f"{local} must hold its Result element")
    err = result.find(_M + "errorObject")
    if err is None:
        return Ack(transaction_id, AckStatus.OK)
    code = err.get("errorCode", "error")
    try:
        status = AckStatus(code)
    except ValueError as exc:
        raise WireError("errorObject/@errorCode", code, "rejected|busy|error") from exc
    retry = _text(err, "retryAfter", required=False)
    return Ack(transaction_id, status, _text(err, "errorString", required=False),
               float(retry) if retry else None)


# ------------------------------------------------------------------ NOT_Server callbacks


def notification_name(note: Notification, kind: HeadEndRequestKind | None) -> str:
    if note.kind is NoteKind.REACHABILITY:
        return "MeterEventNotification"
    if note.kind in (NoteKind.PROVISIONING, NoteKind.INVENTORY) or (
            kind is not None and (kind.provisioning or kind is HeadEndRequestKind.HAN_INVENTORY)):
        return "HANRegistrationNotification"
    if note.kind is NoteKind.DEVICE_RESPONSE:
        if note.cluster_id == 0x0703:
            return "IHDMessageConfirmedNotification"
        if note.cluster_id == 0x0701:
            return "DemandResponseEventNotification"
        return "PricingTiersChangedNotification"
    if kind in (HeadEndRequestKind.LOAD_CONTROL, HeadEndRequestKind.CANCEL_LOAD_CONTROL,
                HeadEndRequestKind.CANCEL_ALL_LOAD_CONTROL):
        return "DemandResponseEventNotification"
    if kind is HeadEndRequestKind.PRICE:
        return "PricingTiersChangedNotification"
    return "IHDMessageStatusNotification"


def encode_notification(note: Notification, kind: HeadEndRequestKind | None) -> bytes:
    env, body = _envelope({"AppName": "headend", "MessageID": note.transaction_id})
    el = etree.SubElement(body, _M + notification_name(note, kind))
    _sub(el, "transactionID", note.transaction_id)
    _sub(el, "hanInterfaceID", note.esi_id)
    _sub(el, "notificationKind", note.kind.value)
    _sub(el, "eventTime", _iso(note.at))
    if note.state is not None:
        _sub(el, "status", note.state)
    if note.eui64 is not None:
        _sub(el, "hanDeviceID", note.eui64)
    if note.reason is not None:
        _sub(el, "errorString", note.reason)
    if note.frame is not None:
        _sub(el, "seFrame", base64.b64encode(note.frame).decode(), cluster=f"0x{note.cluster_id or 0:04X}")
    if note.kind is NoteKind.INVENTORY:
        _encode_registrations(el, note)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def _encode_registrations(el: etree._Element, note: Notification) -> None:
    if note.meter_id is not None:
        _sub(el, "meterID", note.meter_id)
    regs = _sub(el, "HANRegistrations")
    for r in note.registrations:
        reg = _sub(regs, "HANRegistration")
        _sub(reg, "hanDeviceID", r.eui64)
        _sub(reg, "registrationStatus", r.state)
        optional = {"deviceType": r.device_type, "seVersion": r.se_version,
                    "lastCommunication": None if r.last_seen is None else _iso(r.last_seen),
                    "lqi": None if r.lqi is None else str(r.lqi), "rssi": None if r.rssi is None else str(r.rssi),
                    "errorString": r.reason}
        for name, value in optional.items():
            if value is not None:
                _sub(reg, name, value)


def _decode_registrations(el: etree._Element) -> tuple[HanRegistration, ...]:
    regs = el.find(_M + "HANRegistrations")
    if regs is None:
        raise WireError("HANRegistrations", None, "required in an inventory HANRegistrationNotification")
    out = []
    for reg in regs:
        if reg.tag != _M + "HANRegistration":
            raise WireError("HANRegistrations", etree.QName(reg).localname, "HANRegistration elements only")
        seen = _text(reg, "lastCommunication", required=False)
        out.append(HanRegistration(
            eui64=_text(reg, "hanDeviceID") or "", state=_text(reg, "registrationStatus") or "",
            device_type=_text(reg, "deviceType", required=False), se_version=_text(reg, "seVersion", required=False),
            last_seen=None if seen is None else _from_iso(seen, "lastCommunication"),
            lqi=_int(reg, "lqi"), rssi=_int(reg, "rssi"), reason=_text(reg, "errorString", required=False)))
    return tuple(out)


def _int(el: etree._Element, name: str) -> int | None:
    text = _text(el, name, required=False)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise WireError(name, text, "an integer") from exc


def decode_notification(xml: bytes) -> Notification:
    el = _body_child(xml)
    local = etree.QName(el).localname
    if local not in NOTIFICATIONS:
        raise WireError("notification", local, f"one of {sorted(NOTIFICATIONS)}")
    kind_text = _text(el, "notificationKind")
    try:
        kind = NoteKind(kind_text or "")
    except ValueError as exc:
        raise WireError("notificationKind", kind_text, f"one of {[k.value for k in NoteKind]}") from exc
    frame_el = el.find(_M + "seFrame")
    frame = cluster = None
    if frame_el is not None:
        frame = base64.b64decode(frame_el.text or "", validate=True)
        cluster = int(frame_el.get("cluster", "0"), 16)
    inventory = kind is NoteKind.INVENTORY
    return Notification(kind=kind, transaction_id=_text(el, "transactionID", required=False) or "",
                        esi_id=_text(el, "hanInterfaceID") or "",
                        at=_from_iso(_text(el, "eventTime") or "", "eventTime"),
                        state=_text(el, "status", required=False), eui64=_text(el, "hanDeviceID", required=False),
                        reason=_text(el, "errorString", required=False), cluster_id=cluster, frame=frame,
                        meter_id=_text(el, "meterID", required=False) if inventory else None,
                        registrations=_decode_registrations(el) if inventory else ())


def encode_ack_envelope(name: str) -> bytes:
    """The NOT_Server's empty answer to a notification."""
    env, body = _envelope({"AppName": "han-gateway"})
    etree.SubElement(body, _M + f"{name}Response")
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


# ------------------------------------------------------------------ RegisterForService


def encode_register(response_url: str, app_name: str = "han-gateway") -> bytes:
    """MultiSpeak 4 ``RegisterForService``: where the NOT_Server notifications that belong to no
    request (meter events) go."""
    env, body = _envelope({"AppName": app_name})
    reg = etree.SubElement(body, _M + "RegisterForService")
    details = _sub(reg, "registrationDetails")
    _sub(details, "responseURL", response_url)
    _sub(details, "methodsList", "MeterEventNotification")
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def decode_register(xml: bytes) -> str | None:
    """The responseURL of a RegisterForService, or None if the body is another operation."""
    el = _body_child(xml)
    if el.tag != _M + "RegisterForService":
        return None
    details = el.find(_M + "registrationDetails")
    if details is None:
        raise WireError("registrationDetails", None, "required in RegisterForService")
    return _text(details, "responseURL")
