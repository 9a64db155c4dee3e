"""IEC 61968-9 EndDeviceControls / EndDeviceEvents in IEC 61968-100 message envelopes.

Requests: Verb ``create`` (or ``cancel``), Noun ``EndDeviceControls``; each EndDeviceControl has
``mRID``, ``issuerID``, ``issuerTrackingID`` (our transaction id, which the head-end echoes in the
EndDeviceEvents it raises), the meter as ``EndDevices/mRID`` and one action: ``PanDisplay``,
``PanPricing`` or ``PanDemandResponse`` (HEADENDS.md §7.1). 61968-9 has no HAN registration
action; provisioning rides in a ``PanRegistration`` action of ours (marked so). The SE command's
fields are child elements of the action (camelCase of the SE field names).
Replies: Verb ``reply`` with ``Reply/Result`` OK | PARTIAL | FAILED and one ``Error`` per refused
control (``ID`` = its mRID). Events: Verb ``created``, Noun ``EndDeviceEvents``.

The meter's HAN inventory (issue 13) is 61968-9's GetEndDevices: a ``get EndDevices`` request
(``Request/GetEndDevices/EndDevice/mRID`` = the meter's ESI ID, ``Request/ID kind="transaction"``,
the expiry as ``Request/Option`` ``expirationTime``; AsyncReplyFlag and AckRequired true). The
head-end acknowledges it at once (a ``reply EndDevices`` without payload, as for controls) and,
once the meter answered, sends the data to the same ReplyAddress with the same CorrelationID: a
``reply EndDevices`` with ``Reply/ID kind="transaction"`` and ``Payload/EndDevices``: the meter's
own EndDevice (``isPan`` false, ``serialNumber`` its EUI-64, ``status/dateTime`` when it answered)
and one EndDevice per HAN device (``mRID`` its EUI-64, ``isPan`` true, ``type``,
``status/value`` the join state, ``status/reason``; ours, as 61968-9 has none: ``seVersion``,
``lastCommunication``, ``lqi``, ``rssi``).
Built and checked with lxml, element by element.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
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

MSG_NS = "http://iec.ch/TC57/2011/schema/message"
EDC_NS = "http://iec.ch/TC57/2011/EndDeviceControls#"
EDE_NS = "http://iec.ch/TC57/2011/EndDeviceEvents#"
ED_NS = "http://iec.ch/TC57/2011/EndDevices#"
GED_NS = "http://iec.ch/TC57/2011/GetEndDevices#"
_H = f"{{{MSG_NS}}}"
_C = f"{{{EDC_NS}}}"
_E = f"{{{EDE_NS}}}"
_D = f"{{{ED_NS}}}"
_G = f"{{{GED_NS}}}"


def topics(prefix: str) -> dict[str, str]:
    """The MQTT topics under `prefix`: requests to the head-end, its EndDeviceEvents, and the base of
    each client's ReplyAddress. Shared by the adapter and the emulated head-end (one definition of
    where each side publishes; tests/adapters pins the names independently)."""
    return {"request": f"{prefix}/request/EndDeviceControls", "events": f"{prefix}/event/EndDeviceEvents",
            "reply": f"{prefix}/reply"}

ACTION_OF_KIND = {
    HeadEndRequestKind.TEXT: "PanDisplay", HeadEndRequestKind.CANCEL_TEXT: "PanDisplay",
    HeadEndRequestKind.PRICE: "PanPricing",
    HeadEndRequestKind.LOAD_CONTROL: "PanDemandResponse", HeadEndRequestKind.CANCEL_LOAD_CONTROL: "PanDemandResponse",
    HeadEndRequestKind.CANCEL_ALL_LOAD_CONTROL: "PanDemandResponse",
}
ACTIONS = frozenset({*ACTION_OF_KIND.values(), "PanRegistration"})
VERBS = frozenset({"create", "cancel", "get", "reply", "created"})
REQUEST_VERBS = frozenset({"create", "cancel", "get"})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_iso(text: str | None, name: str) -> float:
    try:
        return datetime.fromisoformat((text or "").replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise WireError(name, text, "an ISO 8601 date-time") from exc


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _req(el: etree._Element, tag: str) -> str:
    child = el.find(tag)
    if child is None or child.text is None:
        raise WireError(etree.QName(tag).localname, None, f"required in {etree.QName(el).localname}")
    return str(child.text)


def _opt(el: etree._Element, tag: str) -> str | None:
    child = el.find(tag)
    return None if child is None or child.text is None else str(child.text)


@dataclass(frozen=True, slots=True)
class Header:
    verb: str
    noun: str
    message_id: str
    correlation_id: str | None = None
    reply_address: str | None = None
    async_reply: bool = True


def _message(h: Header) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(_H + "RequestMessage" if h.verb in REQUEST_VERBS else _H + (
        "ResponseMessage" if h.verb == "reply" else "EventMessage"), nsmap={None: MSG_NS})
    header = _sub(root, _H + "Header")
    _sub(header, _H + "Verb", h.verb)
    _sub(header, _H + "Noun", h.noun)
    _sub(header, _H + "Timestamp", _iso(datetime.now(UTC).timestamp()))
    _sub(header, _H + "MessageID", h.message_id)
    if h.correlation_id is not None:
        _sub(header, _H + "CorrelationID", h.correlation_id)
    if h.verb in REQUEST_VERBS:
        _sub(header, _H + "AsyncReplyFlag", "true" if h.async_reply else "false")
        if h.reply_address is not None:
            _sub(header, _H + "ReplyAddress", h.reply_address)
        if h.verb == "get":
            _sub(header, _H + "AckRequired", "true")  # acknowledged at once, the data follows
    return root, header


def parse(xml: bytes) -> tuple[Header, etree._Element]:
    try:
        root = etree.fromstring(xml, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise WireError("message", xml[:80], f"well-formed XML ({exc})") from exc
    header = root.find(_H + "Header")
    if etree.QName(root).namespace != MSG_NS or header is None:
        raise WireError("Header", root.tag, f"a 61968-100 message with a Header ({MSG_NS})")
    verb = _req(header, _H + "Verb")
    if verb not in VERBS:
        raise WireError("Verb", verb, f"one of {sorted(VERBS)}")
    h = Header(verb=verb, noun=_req(header, _H + "Noun"), message_id=_req(header, _H + "MessageID"),
               correlation_id=_opt(header, _H + "CorrelationID"), reply_address=_opt(header, _H + "ReplyAddress"),
               async_reply=_opt(header, _H + "AsyncReplyFlag") != "false")
    return h, root


# ------------------------------------------------------------------ EndDeviceControls


def encode_controls(message_id: str, reply_address: str, requests: Sequence[HeadEndRequest],
                    issuer_id: str = "han-gateway", verb: str = "create") -> bytes:
    root, _ = _message(Header(verb, "EndDeviceControls", message_id, reply_address=reply_address))
    payload = _sub(root, _H + "Payload")
    controls = etree.SubElement(payload, _C + "EndDeviceControls", nsmap={None: EDC_NS})
    for req in requests:
        edc = _sub(controls, _C + "EndDeviceControl")
        _sub(edc, _C + "mRID", req.transaction_id)
        _sub(edc, _C + "issuerID", issuer_id)
        _sub(edc, _C + "issuerTrackingID", req.transaction_id)
        _sub(edc, _C + "EndDeviceControlType", ref=req.kind.value)
        timing = _sub(edc, _C + "scheduledInterval")
        _sub(timing, _C + "end", _iso(req.expires_at))
        dev = _sub(edc, _C + "EndDevices")
        _sub(dev, _C + "mRID", req.esi_id)
        action = _sub(edc, _C + ACTION_OF_KIND.get(req.kind, "PanRegistration"))
        _sub(action, _C + "target", req.target)
        if req.eui64:
            _sub(action, _C + "panDeviceID", req.eui64)
        if req.kind.provisioning:
            if req.link_key is not None:
                _sub(action, _C + "linkKey", req.link_key.hex())
            if req.join_window_s is not None:
                _sub(action, _C + "joinWindowSeconds", str(req.join_window_s))
        else:
            _sub(action, _C + "seVersion", req.se_version)
            cmd = _sub(action, _C + "seCommand", cluster=f"0x{req.cluster_id:04X}", name=req.command)
            for name, value in req.fields.items():
                _sub(cmd, _C + camel(name), str(value))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def decode_controls(xml: bytes) -> tuple[Header, list[HeadEndRequest]]:
    h, root = parse(xml)
    return h, controls_from(h, root)


def controls_from(h: Header, root: etree._Element) -> list[HeadEndRequest]:
    """The requests of a parsed ``create``/``cancel EndDeviceControls`` message."""
    if h.verb not in ("create", "cancel") or h.noun != "EndDeviceControls":
        raise WireError("Verb/Noun", f"{h.verb}/{h.noun}", "create|cancel EndDeviceControls")
    controls = root.find(f"{_H}Payload/{_C}EndDeviceControls")
    if controls is None or len(controls) == 0:
        raise WireError("Payload", None, "EndDeviceControls with at least one EndDeviceControl")
    out = []
    for edc in controls:
        if edc.tag != _C + "EndDeviceControl":
            raise WireError("EndDeviceControls", etree.QName(edc).localname, "only EndDeviceControl children")
        type_el = edc.find(_C + "EndDeviceControlType")
        try:
            kind = HeadEndRequestKind("" if type_el is None else type_el.get("ref", ""))
        except ValueError as exc:
            raise WireError("EndDeviceControlType/@ref", None if type_el is None else type_el.get("ref"),
                            f"one of {[k.value for k in HeadEndRequestKind]}") from exc
        if kind is HeadEndRequestKind.HAN_INVENTORY:
            raise WireError("EndDeviceControlType/@ref", kind.value, "a control (the inventory is get EndDevices)")
        want = ACTION_OF_KIND.get(kind, "PanRegistration")
        action = edc.find(_C + want)
        if action is None:
            raise WireError(want, None, f"the action of a {kind.value} control")
        fields: dict[str, Any] = {}
        cluster_id, command, se_version = 0, "", "1.1"
        if not kind.provisioning:
            cluster_id, command, fields = read_se_command(action.find(_C + "seCommand"), want)
            se_version = _opt(action, _C + "seVersion") or "1.1"
        key = _opt(action, _C + "linkKey")
        window = _opt(action, _C + "joinWindowSeconds")
        out.append(HeadEndRequest(
            transaction_id=_req(edc, _C + "issuerTrackingID"), esi_id=_req(edc, f"{_C}EndDevices/{_C}mRID"),
            kind=kind, expires_at=_from_iso(_req(edc, f"{_C}scheduledInterval/{_C}end"), "scheduledInterval/end"),
            target=_opt(action, _C + "target") or "meter", eui64=_opt(action, _C + "panDeviceID"),
            cluster_id=cluster_id, command=command, fields=fields, se_version=se_version,
            link_key=bytes.fromhex(key) if key else None, join_window_s=int(window) if window else None))
    return out


def encode_reply(correlation_id: str, message_id: str, acks: Sequence[Ack], noun: str = "EndDeviceControls") -> bytes:
    """The acknowledgement of a request message (``noun`` = the request's)."""
    root, _ = _message(Header("reply", noun, message_id, correlation_id=correlation_id))
    reply = _sub(root, _H + "Reply")
    failed = [a for a in acks if a.status is not AckStatus.OK]
    _sub(reply, _H + "Result", "OK" if not failed else "FAILED" if len(failed) == len(acks) else "PARTIAL")
    for a in failed:
        err = _sub(reply, _H + "Error")
        _sub(err, _H + "code", a.status.value)
        _sub(err, _H + "details", a.reason or a.status.value)
        if a.retry_after_s is not None:
            _sub(err, _H + "retryAfter", f"{a.retry_after_s:.3f}")
        _sub(err, _H + "ID", a.transaction_id, kind="transaction")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def decode_reply(xml: bytes, transaction_ids: Sequence[str]) -> tuple[Header, list[Ack]]:
    h, root = parse(xml)
    if h.verb != "reply":
        raise WireError("Verb", h.verb, "reply")
    result = _req(root, f"{_H}Reply/{_H}Result")
    if result not in ("OK", "PARTIAL", "FAILED"):
        raise WireError("Result", result, "OK | PARTIAL | FAILED")
    errors: dict[str, Ack] = {}
    for err in root.iterfind(f"{_H}Reply/{_H}Error"):
        txid = _req(err, _H + "ID")
        code = _req(err, _H + "code")
        try:
            status = AckStatus(code)
        except ValueError as exc:
            raise WireError("Error/code", code, "rejected|busy|error") from exc
        retry = _opt(err, _H + "retryAfter")
        errors[txid] = Ack(txid, status, _opt(err, _H + "details"), float(retry) if retry else None)
    return h, [errors.get(t, Ack(t, AckStatus.OK)) for t in transaction_ids]


# ------------------------------------------------------------------ EndDeviceEvents


def encode_events(message_id: str, notes: Sequence[Notification], issuer_id: str = "han-gateway") -> bytes:
    root, _ = _message(Header("created", "EndDeviceEvents", message_id))
    payload = _sub(root, _H + "Payload")
    events = etree.SubElement(payload, _E + "EndDeviceEvents", nsmap={None: EDE_NS})
    for n in notes:
        ev = _sub(events, _E + "EndDeviceEvent")
        _sub(ev, _E + "mRID", f"{n.transaction_id}:{n.kind.value}:{n.at:.6f}")
        _sub(ev, _E + "createdDateTime", _iso(n.at))
        _sub(ev, _E + "issuerID", issuer_id)
        _sub(ev, _E + "issuerTrackingID", n.transaction_id)
        if n.reason is not None:
            _sub(ev, _E + "reason", n.reason)
        _sub(ev, _E + "EndDeviceEventType", ref=n.kind.value)
        dev = _sub(ev, _E + "EndDevice")
        _sub(dev, _E + "mRID", n.esi_id)
        details = {"status": n.state, "panDeviceID": n.eui64,
                   "cluster": None if n.cluster_id is None else f"0x{n.cluster_id:04X}",
                   "seFrame": None if n.frame is None else base64.b64encode(n.frame).decode()}
        for name, value in details.items():
            if value is not None:
                d = _sub(ev, _E + "EndDeviceEventDetails")
                _sub(d, _E + "name", name)
                _sub(d, _E + "value", value)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def decode_events(xml: bytes) -> list[Notification]:
    h, root = parse(xml)
    if h.verb != "created" or h.noun != "EndDeviceEvents":
        raise WireError("Verb/Noun", f"{h.verb}/{h.noun}", "created EndDeviceEvents")
    out = []
    for ev in root.iterfind(f"{_H}Payload/{_E}EndDeviceEvents/{_E}EndDeviceEvent"):
        type_el = ev.find(_E + "EndDeviceEventType")
        try:
            kind = NoteKind("" if type_el is None else type_el.get("ref", ""))
        except ValueError as exc:
            raise WireError("EndDeviceEventType/@ref", None if type_el is None else type_el.get("ref"),
                            f"one of {[k.value for k in NoteKind]}") from exc
        d = {_req(x, _E + "name"): _req(x, _E + "value") for x in ev.iterfind(_E + "EndDeviceEventDetails")}
        frame = base64.b64decode(d["seFrame"], validate=True) if "seFrame" in d else None
        out.append(Notification(
            kind=kind, transaction_id=_opt(ev, _E + "issuerTrackingID") or "",
            esi_id=_req(ev, f"{_E}EndDevice/{_E}mRID"),
            at=_from_iso(_req(ev, _E + "createdDateTime"), "createdDateTime"), state=d.get("status"),
            eui64=d.get("panDeviceID"), reason=_opt(ev, _E + "reason"),
            cluster_id=int(d["cluster"], 16) if "cluster" in d else None, frame=frame))
    return out


# ------------------------------------------------------------------ GetEndDevices (HAN inventory)


def encode_get_end_devices(message_id: str, reply_address: str, req: HeadEndRequest) -> bytes:
    """``get EndDevices`` for the HAN devices of one meter (a ``han_inventory`` request)."""
    if req.kind is not HeadEndRequestKind.HAN_INVENTORY:
        raise WireError("kind", req.kind.value, "han_inventory (get EndDevices)")
    root, _ = _message(Header("get", "EndDevices", message_id, reply_address=reply_address))
    request = _sub(root, _H + "Request")
    get = etree.SubElement(request, _G + "GetEndDevices", nsmap={None: GED_NS})
    meter = _sub(get, _G + "EndDevice")
    _sub(meter, _G + "mRID", req.esi_id)
    _sub(request, _H + "ID", req.transaction_id, kind="transaction")
    option = _sub(request, _H + "Option")
    _sub(option, _H + "name", "expirationTime")
    _sub(option, _H + "value", _iso(req.expires_at))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def get_end_devices_from(h: Header, root: etree._Element) -> HeadEndRequest:
    """The ``han_inventory`` request of a parsed ``get EndDevices`` message."""
    if h.verb != "get" or h.noun != "EndDevices":
        raise WireError("Verb/Noun", f"{h.verb}/{h.noun}", "get EndDevices")
    request = root.find(_H + "Request")
    if request is None:
        raise WireError("Request", None, "required in get EndDevices")
    txid = next((el.text for el in request.iterfind(_H + "ID") if el.get("kind") == "transaction"), None)
    if not txid:
        raise WireError("Request/ID", None, 'an ID kind="transaction" in get EndDevices')
    expiry = next((_opt(o, _H + "value") for o in request.iterfind(_H + "Option")
                   if _opt(o, _H + "name") == "expirationTime"), None)
    return HeadEndRequest(transaction_id=txid, esi_id=_req(request, f"{_G}GetEndDevices/{_G}EndDevice/{_G}mRID"),
                          kind=HeadEndRequestKind.HAN_INVENTORY,
                          expires_at=_from_iso(expiry, "Option expirationTime"), target="meter")


def encode_end_devices(correlation_id: str, message_id: str, note: Notification) -> bytes:
    """The data reply to a get EndDevices: the meter's inventory (an ``inventory`` note), or
    FAILED with the head-end's reason (a ``failed`` note)."""
    root, _ = _message(Header("reply", "EndDevices", message_id, correlation_id=correlation_id))
    reply = _sub(root, _H + "Reply")
    ok = note.kind is NoteKind.INVENTORY
    _sub(reply, _H + "Result", "OK" if ok else "FAILED")
    if not ok:
        err = _sub(reply, _H + "Error")
        _sub(err, _H + "code", "failed")
        _sub(err, _H + "details", note.reason or "the meter did not answer")
    _sub(reply, _H + "ID", note.transaction_id, kind="transaction")
    if not ok:
        return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    payload = _sub(root, _H + "Payload")
    devices = etree.SubElement(payload, _D + "EndDevices", nsmap={None: ED_NS})
    meter = _sub(devices, _D + "EndDevice")
    _sub(meter, _D + "mRID", note.esi_id)
    _sub(meter, _D + "isPan", "false")
    if note.meter_id is not None:
        _sub(meter, _D + "serialNumber", note.meter_id)
    _sub(_sub(meter, _D + "status"), _D + "dateTime", _iso(note.at))
    for r in note.registrations:
        dev = _sub(devices, _D + "EndDevice")
        _sub(dev, _D + "mRID", r.eui64)
        _sub(dev, _D + "isPan", "true")
        if r.device_type is not None:
            _sub(dev, _D + "type", r.device_type)
        status = _sub(dev, _D + "status")
        _sub(status, _D + "value", r.state)
        if r.reason is not None:
            _sub(status, _D + "reason", r.reason)
        ours = {"seVersion": r.se_version, "lastCommunication": None if r.last_seen is None else _iso(r.last_seen),
                "lqi": None if r.lqi is None else str(r.lqi), "rssi": None if r.rssi is None else str(r.rssi)}
        for name, value in ours.items():
            if value is not None:
                _sub(dev, _D + name, value)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _opt_int(el: etree._Element, tag: str) -> int | None:
    text = _opt(el, tag)
    try:
        return None if text is None else int(text)
    except ValueError as exc:
        raise WireError(etree.QName(tag).localname, text, "an integer") from exc


def end_devices_note(h: Header, root: etree._Element) -> Notification | None:
    """The inventory (or its failure) a parsed reply carries; None for any other reply (the
    acknowledgements of controls and of the get itself carry no ``Reply/ID``)."""
    if h.verb != "reply" or h.noun != "EndDevices":
        return None
    txid = next((el.text for el in root.iterfind(f"{_H}Reply/{_H}ID") if el.get("kind") == "transaction"), None)
    if not txid:
        return None
    result = _req(root, f"{_H}Reply/{_H}Result")
    devices = root.find(f"{_H}Payload/{_D}EndDevices")
    if result != "OK" or devices is None:
        return Notification(NoteKind.FAILED, txid, "", datetime.now(UTC).timestamp(),
                            reason=_opt(root, f"{_H}Reply/{_H}Error/{_H}details") or f"Result {result}")
    meter, *rest = [d for d in devices if d.tag == _D + "EndDevice"] or [None]
    if meter is None or _opt(meter, _D + "isPan") != "false":
        raise WireError("EndDevices", None, "the meter's own EndDevice (isPan false) first")
    regs = []
    for dev in rest:
        seen = _opt(dev, _D + "lastCommunication")
        regs.append(HanRegistration(
            eui64=_req(dev, _D + "mRID"), state=_req(dev, f"{_D}status/{_D}value"), device_type=_opt(dev, _D + "type"),
            se_version=_opt(dev, _D + "seVersion"),
            last_seen=None if seen is None else _from_iso(seen, "lastCommunication"),
            lqi=_opt_int(dev, _D + "lqi"), rssi=_opt_int(dev, _D + "rssi"), reason=_opt(dev, f"{_D}status/{_D}reason")))
    return Notification(NoteKind.INVENTORY, txid, _req(meter, _D + "mRID"),
                        _from_iso(_req(meter, f"{_D}status/{_D}dateTime"), "status/dateTime"),
                        meter_id=_opt(meter, _D + "serialNumber"), registrations=tuple(regs))
