"""Premises (loaded by operators), their HAN devices, and authorization checks."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from gateway.api.deps import Operator, Pages, Svc, Who, provisioned_by
from gateway.api.links import to
from gateway.api.params import EsiIdPath
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import (
    PROBLEM_RESPONSES,
    AuthorizationIn,
    DecisionOut,
    DeviceOut,
    ImportReportOut,
    PageOut,
    PremiseIn,
    PremiseOut,
)
from gateway.authz import authorize
from gateway.domain.esi_id import EsiIdError, Tdsp, tdsp_for_esi_id
from gateway.domain.model import DeviceStatus, Role
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.premise_import import COLUMNS, REQUIRED, HeaderError, import_premises

ESI_ID = "$response.body#/esi_id"

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["premises"])

PREMISE_STATUS = "^(active|removed|moved_out)$"


def _csv_header_pattern() -> str:
    """The header row import_premises accepts: known column names (any case, spaces around
    them), esi_id and meter_number among them in either order. For the document only: the
    importer checks the same rule, naming each missing or unknown column. (No look-ahead: the
    fuzzer's generator handles those slowly.)"""
    def name(column: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in column)
    sp = "[ \\t]*"
    cell = f"{sp}(?:{'|'.join(name(c) for c in COLUMNS)}){sp}"
    esi, meter = (f"{sp}{name(c)}{sp}" for c in REQUIRED)
    both = f"(?:{esi}(?:,{cell})*,{meter}|{meter}(?:,{cell})*,{esi})"
    return f"^(?:{cell},)*{both}(?:,{cell})*(?:\\r?\\n|$)"


CSV_HEADER_PATTERN = _csv_header_pattern()


_PREMISE_LINKS = {"GetPremise": to("/v1/premises/{esi_id}", "get", esi_id=ESI_ID),
                  "ListDevices": to("/v1/premises/{esi_id}/devices", "get", esi_id=ESI_ID),
                  "HanHistory": to("/v1/premises/{esi_id}/han", "get", esi_id=ESI_ID)}


@router.post("/premises", response_model=PremiseOut, status_code=201, responses={
    200: {"model": PremiseOut, "description": "updated", "links": _PREMISE_LINKS},
    201: {"links": _PREMISE_LINKS}})
async def put_premise(body: PremiseIn, svc: Svc, _: Operator, response: Response) -> PremiseOut:
    """Create or update one premise by ESI ID (the TDSP is derived from it)."""
    try:
        tdsp = tdsp_for_esi_id(body.esi_id)
    except EsiIdError as exc:
        raise InvalidRequest(str(exc), errors=[FieldError("esi_id", exc.code, exc.reason,
                                                          body.esi_id)]) from None
    before = await svc.store.get_premise(body.esi_id)
    values = body.model_dump()
    values["tdsp"] = tdsp.value
    values["premise_class"] = body.premise_class.value
    outcome = await svc.store.upsert_premise(values, svc.clock.now())
    if before is not None and before.customer_email and (
            (before.customer_email or "").lower() != (body.customer_email or "").lower()):
        await svc.agreements.terminate_for_premise(
            body.esi_id, "the customer of record changed (move-out)", by="operator")
    if outcome != "created":
        response.status_code = 200
    premise = await svc.store.get_premise(body.esi_id)
    assert premise is not None
    return PremiseOut.of(premise, operator=True)


@router.post("/premises/import", response_model=ImportReportOut)
async def import_csv(
    svc: Svc, _: Operator,
    csv_text: Annotated[str, Body(media_type="text/csv", min_length=1,
                                  json_schema_extra={"pattern": CSV_HEADER_PATTERN},
                                  description="CSV with a header row: esi_id, meter_number, "
                                              "customer_email, rep, premise_class, se_version, "
                                              "enhanced_meter")],
) -> ImportReportOut:
    """Bulk load: good rows are stored, bad rows come back with line, column and problem."""
    try:
        report = await import_premises(csv_text.splitlines(keepends=True), svc.store,
                                       svc.agreements, svc.clock)
    except HeaderError as exc:
        raise InvalidRequest(str(exc), errors=[
            *(FieldError("header", "missing_column", f"required column {c} is missing", c)
              for c in exc.missing),
            *(FieldError("header", "unknown_column", f"unknown column {c}", c)
              for c in exc.unknown),
        ]) from None
    return ImportReportOut(**report.as_dict())


@router.get("/premises", response_model=PageOut[PremiseOut])
async def list_premises(*, svc: Svc, who: Who, page: Pages, tdsp: Tdsp | None = None,
                        rep: str | None = None,
                        status: Annotated[str | None, Query(pattern=PREMISE_STATUS)] = None,
                        ) -> PageOut[PremiseOut]:
    found = await svc.store.list_premises(
        visible_to=who, now=svc.clock.now(), tdsp=tdsp.value if tdsp else None, rep=rep,
        status=status, cursor=page.cursor, limit=page.limit)
    is_operator = who.role is Role.OPERATOR
    return PageOut[PremiseOut](items=[PremiseOut.of(p, operator=is_operator) for p in found.items],
                            next_cursor=found.next_cursor)


@router.get("/premises/{esi_id}", response_model=PremiseOut)
async def get_premise(esi_id: EsiIdPath, svc: Svc, who: Who) -> PremiseOut:
    premise = await svc.store.get_premise(esi_id)  # allowed by the policy (VIEW_PREMISE)
    assert premise is not None
    return PremiseOut.of(premise, operator=who.role is Role.OPERATOR)


@router.delete("/premises/{esi_id}", status_code=204)
async def remove_premise(esi_id: EsiIdPath, svc: Svc, who: Operator) -> Response:
    """The ESI ID is retired: agreements on it end (terminated by system). The row is kept
    (status `removed`) for the audit log and history; it answers 404 to third parties."""
    await svc.store.set_premise_status(esi_id, "removed", svc.clock.now())
    await svc.agreements.terminate_for_premise(esi_id, "the premise was removed", by="operator")
    return Response(status_code=204)


@router.post("/premises/{esi_id}/move-out", status_code=204)
async def move_out(esi_id: EsiIdPath, svc: Svc, who: Operator) -> Response:
    """The customer moved out: their contact is cleared and agreements end (by system)."""
    await svc.store.set_premise_status(esi_id, "moved_out", svc.clock.now(),
                                       clear_customer=True)
    await svc.agreements.terminate_for_premise(esi_id, "the customer moved out", by="operator")
    return Response(status_code=204)


@router.get("/premises/{esi_id}/devices", response_model=PageOut[DeviceOut])
async def list_devices(esi_id: EsiIdPath, svc: Svc, who: Who, page: Pages,
                       status: DeviceStatus | None = None) -> PageOut[DeviceOut]:
    # Allowed by the policy (VIEW_DEVICES); a third party sees the devices it provisioned only.
    found = await svc.store.list_devices(esi_id, status=status, cursor=page.cursor, limit=page.limit,
                                         provisioned_by=provisioned_by(who))
    return PageOut[DeviceOut](items=[DeviceOut.of(d) for d in found.items],
                           next_cursor=found.next_cursor)


@router.post("/premises/{esi_id}/authorization", response_model=DecisionOut)
async def check_authorization(esi_id: EsiIdPath, body: AuthorizationIn, svc: Svc,
                              who: Who) -> DecisionOut:
    """Ask whether you may do `action` to this premise now (HAN actions are audited)."""
    decision = await authorize(svc.store, who, body.action, esi_id, now=svc.clock.now(),
                               device_eui64=body.device_eui64)
    if not decision.visible:
        raise NotFound(f"no premise {esi_id} visible to you")
    return DecisionOut.of(decision)
