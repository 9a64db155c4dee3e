"""On-demand meter reads (issue 16): a party with an Energy Data agreement in force at a premise
asks for a current register read of its meter (202, pending); the worker reads the meter
(gateway/meter_reads.py) and the party polls `GET /v1/meter-reads/{id}` or hears
`meter_read.completed` / `meter_read.failed` on its event channels. Capped per TDSP and day."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.api.deps import Svc, Who
from gateway.api.links import links, to
from gateway.api.params import EsiIdPath
from gateway.api.policy import PolicyRoute
from gateway.api.problems import MeterReadQuotaExceeded
from gateway.api.schemas import PROBLEM_RESPONSES
from gateway.errors import NotFound
from gateway.meter_reads import MeterReadService, ReadQuotaExceeded, read_body
from gateway.store.ownership import parse_row_id

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["usage"])


class RegisterReadOut(BaseModel):
    read_at: datetime
    delivered_wh: int
    received_wh: int | None
    demand_w: int | None


class MeterReadOut(BaseModel):
    id: int
    esi_id: str
    status: str  # pending | completed | failed
    agreement_id: int | None
    requested_at: datetime
    finished_at: datetime | None = None
    read: RegisterReadOut | None = None  # completed
    reason: str | None = None  # failed: unreachable | not_supported | expired
    detail: str | None = None


def _out(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k != "meter_read_id"}
    out["id"] = body["meter_read_id"]
    MeterReadOut.model_validate(out)  # the documented shape; sent as the events send it (+00:00 times)
    return {k: out.get(k) for k in MeterReadOut.model_fields}


@router.post("/premises/{esi_id}/meter-reads", status_code=202, response_model=MeterReadOut, responses=links(
    202, GetMeterRead=to("/v1/meter-reads/{read_id}", "get", read_id="$response.body#/id")),
    summary="Ask for an on-demand register read of the premise's meter (asynchronous; capped per TDSP and day)")
async def request_meter_read(esi_id: EsiIdPath, request: Request, svc: Svc, who: Who) -> JSONResponse:
    premise = await svc.store.get_premise(esi_id)
    if premise is None:  # removed since the policy looked
        raise NotFound(f"no premise {esi_id} visible to you", code="unknown_premise")
    decision = getattr(request.state, "decision", None)
    service: MeterReadService = request.app.state.meter_reads
    try:
        read = await service.submit(party_id=who.party_id, agreement_id=decision.agreement_id if decision else None,
                                    esi_id=esi_id, tdsp=premise.tdsp)
    except ReadQuotaExceeded as exc:
        wait = math.ceil((exc.resets_at - svc.clock.now()).total_seconds())
        raise MeterReadQuotaExceeded(str(exc), tdsp=exc.tdsp, limit=exc.limit,
                                     resets_at=exc.resets_at.isoformat(), retry_after=max(1, wait)) from None
    worker = getattr(request.app.state, "meter_read_worker", None)
    if worker is not None:
        worker.poke()  # keyed requests commit later: the policy pokes again after the commit
    return JSONResponse(_out(read_body(read)), status_code=202,
                        headers={"Location": f"/v1/meter-reads/{read.id}"})


@router.get("/meter-reads/{read_id}", response_model=MeterReadOut,
            summary="An on-demand read: pending, completed (with the register) or failed (with a reason)")
async def get_meter_read(read_id: str, svc: Svc) -> JSONResponse:
    row_id = parse_row_id(read_id)
    read = await svc.store.get_meter_read(row_id) if row_id is not None else None
    if read is None:  # the policy let the caller in: the operator, or the read's own party
        raise NotFound(f"no meter read {read_id}", code="unknown_meter_read")
    return JSONResponse(_out(read_body(read)))
