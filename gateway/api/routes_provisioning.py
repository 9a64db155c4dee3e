"""HAN provisioning through the API: a device by EUI-64 + install code (checked at entry; only the
derived link key is kept, encrypted), its status and history, delete; and the premise's HAN as a
whole (initialize, clear, decommission) for operators and assigned technicians.

Every operation is stored (han_provisioning_ops) before this answers; the provisioning sender
hands it to the premise's route (gateway/pipeline/provisioning.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ams_adapters.contract import ProvisioningKind
from gateway.api.deps import Svc, Who, provisioned_by
from gateway.api.links import links, to
from gateway.api.params import EsiIdPath, Eui64Path
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import (
    PROBLEM_RESPONSES,
    DeviceDetailOut,
    DeviceEventOut,
    DeviceIn,
    HanHistoryOut,
    HanOperationOut,
)
from gateway.device_keys import LinkKeyCipher
from gateway.domain.limits import device_limit
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound, Unavailable
from gateway.pipeline.provisioning import ProvisioningSender
from gateway.store import provisioning as prov
from zigbee_se import InstallCodeError, parse_install_code

ESI_ID = "$response.body#/esi_id"
EUI64 = "$response.body#/eui64"

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["provisioning"])


def _cipher(request: Request) -> LinkKeyCipher:
    cipher: LinkKeyCipher | None = request.app.state.link_key_cipher
    if cipher is None:
        raise Unavailable("HAN provisioning needs a device key to encrypt link keys: set [security] "
                          "device_key_secret (or HANGW_SECURITY__DEVICE_KEY_SECRET, or device_key_file); "
                          "`hangw admin device-key` prints a new one", code="device_key_missing")
    return cipher


def _sender(request: Request) -> ProvisioningSender:
    sender: ProvisioningSender = request.app.state.provisioning
    return sender


def _store(svc: Svc) -> prov.ProvisioningStore:
    return prov.ProvisioningStore(svc.store)


def _detail(d: prov.ProvisionedDevice) -> DeviceDetailOut:
    return DeviceDetailOut(
        esi_id=d.esi_id, eui64=d.eui64, device_type=d.device_type, status=d.status, created_at=d.created_at,
        updated_at=d.updated_at, join_window_ends_at=d.join_window_ends_at, last_reason=d.last_reason,
        history=[_event(e) for e in d.history])


def _event(e: prov.DeviceEvent) -> DeviceEventOut:
    return DeviceEventOut(state=e.state, at=e.at, reason=e.reason, detail=e.detail, operation_id=e.operation_id)


def _operation(op: prov.Operation) -> HanOperationOut:
    return HanOperationOut(id=op.id, esi_id=op.esi_id, eui64=op.eui64, kind=op.kind, state=op.state,
                           reason=op.reason, created_at=op.created_at, updated_at=op.updated_at)


def _link_key(install_code: str, eui64: str) -> bytes:
    """The link key of a typed or scanned install code; a typed error naming what is wrong."""
    try:
        code = parse_install_code(install_code)
    except InstallCodeError as exc:
        kind = "install_code_crc_mismatch" if exc.expected_crc else "install_code_invalid"
        detail = f"install code refused: {exc.reason}"
        raise InvalidRequest(detail, code=kind, errors=[FieldError(
            "install_code", kind, exc.reason, install_code)]) from None
    if code.eui64 is not None and code.eui64.replace(":", "").upper() != eui64:
        raise InvalidRequest("the QR code is another device's", errors=[FieldError(
            "install_code", "install_code_other_device",
            f"the QR code carries EUI-64 {code.eui64.replace(':', '').upper()}, not {eui64}", install_code)])
    return code.link_key


@router.post("/premises/{esi_id}/devices", status_code=201, response_model=DeviceDetailOut, responses=links(
    201, GetDevice=to("/v1/premises/{esi_id}/devices/{eui64}", "get", esi_id=ESI_ID, eui64=EUI64),
    DeleteDevice=to("/v1/premises/{esi_id}/devices/{eui64}", "delete", esi_id=ESI_ID, eui64=EUI64)))
async def provision_device(esi_id: EsiIdPath, body: DeviceIn, svc: Svc, who: Who, request: Request) -> DeviceDetailOut:
    """Provision a HAN device: the install code is checked here (a bad CRC is refused, naming the
    expected CRC), the derived link key is stored encrypted and sent to the premise's head-end,
    which opens the meter's join window. Follow the status with GET …/devices/{eui64}.

    A device that failed (or was removed) may be provisioned again, e.g. with a corrected code."""
    return _detail(await provision(request, svc, esi_id, body, who.party_id))


async def provision(request: Request, svc: Svc, esi_id: str, body: DeviceIn, party_id: int | None,
                    ) -> prov.ProvisionedDevice:
    """The provisioning of `POST /v1/premises/{esi_id}/devices`, for the pages' form too (the caller's
    policy allowed PROVISION_DEVICE on the premise): the stored device, or a typed GatewayError."""
    eui64 = body.eui64.upper()
    _sender(request).require_route_can(esi_id, ProvisioningKind.PROVISION_DEVICE)
    link_key = _link_key(body.install_code, eui64)
    premise = await svc.store.get_premise(esi_id)
    assert premise is not None
    limit = device_limit(premise.enhanced_meter)
    store = _store(svc)
    in_use = await store.slots_in_use(esi_id)
    if in_use >= limit:
        raise Conflict(f"meter {premise.meter_number} holds at most {limit} devices",
                       code="device_limit_reached", errors=[FieldError(
                           "eui64", "device_limit_reached",
                           f"{in_use} of {limit} device slots in use (limit {limit})", eui64)])
    encrypted = _cipher(request).encrypt(link_key)
    op_id = await store.request_device(
        esi_id=esi_id, eui64=eui64, device_type=body.device_type, party_id=party_id,
        link_key_encrypted=encrypted, join_window_s=body.join_window_days * 86_400, now=svc.clock.now())
    if op_id is None:
        raise Conflict(f"device {eui64} is known at {esi_id} already (delete it first, or wait for it to "
                       "fail)", code="device_exists")
    _sender(request).poke()
    device = await store.device(esi_id, eui64)
    assert device is not None
    return device


@router.get("/premises/{esi_id}/devices/{eui64}", response_model=DeviceDetailOut)
async def get_device(esi_id: EsiIdPath, eui64: Eui64Path, svc: Svc, who: Who) -> DeviceDetailOut:
    """A device's provisioning status, join-window end, last failure reason and history."""
    eui64 = eui64.upper()  # allowed by the policy: the premise, and for a third party its own device
    device = await _store(svc).device(esi_id, eui64)
    if device is None:
        raise NotFound(f"no device {eui64} at {esi_id}")
    return _detail(device)


@router.delete("/premises/{esi_id}/devices/{eui64}", status_code=202, response_model=HanOperationOut,
               responses={204: {"description": "the device was removed already"}})
async def delete_device(esi_id: EsiIdPath, eui64: Eui64Path, svc: Svc, who: Who,
                        request: Request) -> HanOperationOut | Response:
    """Send delete-device to the meter; the device is `delete_requested` until the head-end
    confirms, then `removed`."""
    eui64 = eui64.upper()  # allowed by the policy: the premise, and for a third party its own device
    _sender(request).require_route_can(esi_id, ProvisioningKind.DELETE_DEVICE)
    store = _store(svc)
    op_id = await store.request_delete(esi_id, eui64, who.party_id, svc.clock.now(),
                                       provisioned_by=provisioned_by(who))
    if op_id is None:
        raise NotFound(f"no device {eui64} at {esi_id}")
    if op_id == 0:
        return Response(status_code=204)  # removed already: nothing to send
    _sender(request).poke()
    op = await store.operation(op_id)
    assert op is not None
    return _operation(op)


async def _premise_operation(esi_id: str, kind: str, svc: Svc, who: Who, request: Request) -> HanOperationOut:
    # Allowed by the policy (MANAGE_HAN: operators and assigned technicians).
    _sender(request).require_route_can(esi_id, ProvisioningKind(kind))
    store = _store(svc)
    op_id = await store.request_premise_operation(esi_id, kind, svc.clock.now())
    _sender(request).poke()
    op = await store.operation(op_id)
    assert op is not None
    return _operation(op)


@router.post("/premises/{esi_id}/han/initialize", status_code=202, response_model=HanOperationOut)
async def initialize_han(esi_id: EsiIdPath, svc: Svc, who: Who, request: Request) -> HanOperationOut:
    """Initialize the meter's HAN (operators, assigned technicians)."""
    return await _premise_operation(esi_id, prov.INITIALIZE_HAN, svc, who, request)


@router.post("/premises/{esi_id}/han/clear", status_code=202, response_model=HanOperationOut)
async def clear_han(esi_id: EsiIdPath, svc: Svc, who: Who, request: Request) -> HanOperationOut:
    """Remove every device from the meter (operators, assigned technicians)."""
    return await _premise_operation(esi_id, prov.CLEAR_DEVICES, svc, who, request)


@router.post("/premises/{esi_id}/han/decommission", status_code=202, response_model=HanOperationOut)
async def decommission_han(esi_id: EsiIdPath, svc: Svc, who: Who, request: Request) -> HanOperationOut:
    """Decommission the meter's HAN, e.g. before a meter swap (operators, assigned technicians)."""
    return await _premise_operation(esi_id, prov.DECOMMISSION_HAN, svc, who, request)


@router.get("/premises/{esi_id}/han", response_model=HanHistoryOut)
async def han_history(esi_id: EsiIdPath, svc: Svc, who: Who) -> HanHistoryOut:
    """The premise's latest provisioning operations (newest first) and HAN-wide events."""
    ops, events = await _store(svc).premise_history(esi_id, provisioned_by=provisioned_by(who))
    return HanHistoryOut(operations=[_operation(o) for o in ops], events=[_event(e) for e in events])
