"""The field technician's view: the premises assigned to them, each with its HAN devices and their
provisioning states and the latest provisioning operations, and a form to provision a device by
its EUI-64 and install code — `POST /v1/premises/{esi_id}/devices`'s own code
(gateway/api/routes_provisioning.py `provision`), behind the same premise policy (an assigned
technician, `Action.PROVISION_DEVICE`). A technician signs in on the dashboard's sign-in form with
their token (`Rel.FIELD_SESSION`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.api.routes_provisioning import provision
from gateway.api.schemas import DeviceIn
from gateway.domain.records import Principal
from gateway.errors import GatewayError
from gateway.pages.render import PageRefused, redirect, render, require_csrf, tr
from gateway.store import provisioning as prov
from gateway.store.operations_view import IN_PROGRESS

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

PREMISES_SHOWN = 100
DEVICES_SHOWN = 50
OPERATIONS_SHOWN = 10
DEVICE_TYPES = ("in_home_display", "thermostat", "load_control_device", "smart_plug", "range_extender")


async def _page(request: Request, svc: Svc, status: int = 200, **extra: object) -> Response:
    who: Principal = request.state.principal  # set by the policy (Rel.FIELD_SESSION)
    now = svc.clock.now()
    premises = (await svc.store.list_premises(visible_to=who, now=now, limit=PREMISES_SHOWN)).items
    store = prov.ProvisioningStore(svc.store)
    devices = {p.esi_id: (await svc.store.list_devices(p.esi_id, limit=DEVICES_SHOWN)).items for p in premises}
    operations = {p.esi_id: (await store.premise_history(p.esi_id, OPERATIONS_SHOWN))[0] for p in premises}
    in_progress = [(p.esi_id, d) for p in premises for d in devices[p.esi_id] if d.status.value in IN_PROGRESS]
    return render(request, "field.html", status, title=tr(request, "Field view"), premises=premises,
                  devices=devices, operations=operations, in_progress=in_progress, device_types=DEVICE_TYPES,
                  done=request.query_params.get("done", ""), **extra)


@router.get("/field")
async def field_page(request: Request, svc: Svc) -> Response:
    return await _page(request, svc)


@router.post("/field/premises/{esi_id}/devices")
async def provision_from_form(request: Request, esi_id: str, svc: Svc) -> Response:
    form = await require_csrf(request)
    try:
        body = DeviceIn.model_validate({
            "eui64": form.get("eui64", "").replace(":", "").replace("-", "").strip(),
            "device_type": form.get("device_type", ""), "install_code": form.get("install_code", ""),
            "join_window_days": form.get("join_window_days", "1")})
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"] for e in exc.errors()}
        return await _page(request, svc, 400, form_esi=esi_id, form=form, errors=errors)
    try:
        device = await provision(request, svc, esi_id, body, None)
    except GatewayError as exc:  # a bad install code, a full meter, a known device…: said by the form
        field = exc.errors[0].field if exc.errors else "eui64"
        return await _page(request, svc, exc.status, form_esi=esi_id, form=form, errors={field: exc.detail if not
                           exc.errors else exc.errors[0].message})
    if device is None:  # pragma: no cover - provision returns the stored device or raises
        raise PageRefused(500, tr(request, "Nothing was changed"), "")
    return redirect(request, f"/field?done={device.eui64}#premise-{esi_id}")
