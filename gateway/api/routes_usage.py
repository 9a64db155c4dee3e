"""Usage data: a premise's interval, daily and monthly reads (JSON or CSV), and the operator's
ingestion run. Green Button (ESPI) feeds of the same data: gateway/api/routes_espi.py; on-demand
reads: routes_meter_reads.py; bulk reports over many premises: routes_usage_reports.py."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel

from gateway.agreements import USAGE_TIME_ZONE
from gateway.api.deps import Operator, Svc, Who
from gateway.api.params import EsiIdPath
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import PROBLEM_RESPONSES
from gateway.authz import usage_agreements, usage_grant
from gateway.domain.model import Action, Role, UsageInterval
from gateway.errors import Forbidden, NotFound
from gateway.usage import UsageService, check_period

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["usage"])

TIME_ZONE = "America/Chicago"
UNIT = "Wh"
CSV_COLUMNS = ("start_local", "end_local", "start_utc", "channel", "value", "unit", "quality", "intervals",
               "expected_intervals")


class UsageItemOut(BaseModel):
    start: datetime  # local time (America/Chicago) with its UTC offset
    end: datetime
    channel: str
    value_wh: int | None
    quality: str
    intervals: int
    expected_intervals: int


class UsageOut(BaseModel):
    esi_id: str
    interval: UsageInterval
    time_zone: str = TIME_ZONE
    unit: str = UNIT
    items: list[UsageItemOut]
    next_cursor: str | None


class IngestionRunOut(BaseModel):
    agreements: int
    premises: int
    reads: int
    errors: list[dict[str, str]]


def _service(request: Request) -> UsageService:
    found: UsageService = request.app.state.usage
    return found


def _local(moment: datetime) -> datetime:
    return moment.astimezone(USAGE_TIME_ZONE)


@router.get("/premises/{esi_id}/usage", response_model=UsageOut, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "JSON, or CSV with `Accept: text/csv` (next page in the `Link` header)"}})
async def usage(
    *, esi_id: EsiIdPath, request: Request, svc: Svc, who: Who,
    start: Annotated[AwareDatetime, Query(alias="from", description="start of the period (with its UTC offset)")],
    end: Annotated[AwareDatetime, Query(alias="to", description="end of the period (exclusive)")],
    interval: UsageInterval = UsageInterval.MIN15,
    # Unix seconds (and a channel digit): 11 digits reach past the year 5000, so a longer cursor
    # was never returned and is refused before it is read.
    cursor: Annotated[str | None, Query(max_length=11, pattern=r"^[0-9]*$",
                                        description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="items a page")] = 1000,
) -> Response:
    """The premise's usage in [from, to): 15-minute intervals as the meter read them, or daily /
    monthly sums cut at local midnight in America/Chicago, in Wh, each with its quality (actual,
    estimated, missing). A third party reads only a premise and period its Energy Data agreement
    in force covers, at the agreement's interval or a coarser one."""
    check_period(start, end, interval)
    if who.role is Role.THIRD_PARTY:
        now = svc.clock.now()
        decision = usage_grant(await usage_agreements(svc.store, who, esi_id, now), start, end, interval)
        if not decision.allowed:
            await svc.store.append_audit(at=now, principal=who, action=Action.READ_USAGE.value, esi_id=esi_id,
                                         device_eui64=None, agreement_id=decision.agreement_id, allowed=False,
                                         reason=decision.reason)
        if not decision.visible:
            raise NotFound(f"no premise {esi_id} visible to you", code="unknown_premise")
        if not decision.allowed:
            raise Forbidden(f"read_usage of {esi_id} from {start.isoformat()} to {end.isoformat()} at "
                            f"{interval.value} refused: {decision.reason}", code=decision.reason)
    service = _service(request)
    items: list[UsageItemOut]
    if interval is UsageInterval.MIN15:
        rows, next_cursor = await service.intervals(esi_id, start, end, cursor=cursor, limit=limit)
        items = [UsageItemOut(start=_local(r.interval_start), end=_local(r.interval_start + timedelta(
            seconds=r.length_s)), channel=r.channel, value_wh=r.value_wh if r.quality != "missing" else None,
            quality=r.quality, intervals=1, expected_intervals=1) for r in rows]
    else:
        aggregates, next_cursor = await service.aggregated(esi_id, start, end, interval, cursor=cursor,
                                                           limit=limit)
        items = [UsageItemOut(start=_local(a.start), end=_local(a.end), channel=a.channel, value_wh=a.value_wh,
                              quality=a.quality, intervals=a.intervals, expected_intervals=a.expected_intervals)
                 for a in aggregates]
    if "text/csv" in request.headers.get("accept", ""):
        return _csv(request, items, next_cursor)
    body = UsageOut(esi_id=esi_id, interval=interval, items=items, next_cursor=next_cursor)
    return JSONResponse(body.model_dump(mode="json"))


def _csv(request: Request, items: list[UsageItemOut], next_cursor: str | None) -> Response:
    """One row per item; units, quality and the time zone in the columns (start_local carries its
    UTC offset, the zone is America/Chicago); the next page in a `Link: <…>; rel="next"` header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        writer.writerow([item.start.isoformat(), item.end.isoformat(), item.start.astimezone(UTC).isoformat(),
                         item.channel, "" if item.value_wh is None else item.value_wh, UNIT, item.quality,
                         item.intervals, item.expected_intervals])
    headers = {"Content-Disposition": "inline", "X-Time-Zone": TIME_ZONE}
    if next_cursor is not None:
        headers["Link"] = f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8; header=present", headers=headers)


@router.post("/usage-ingestion-runs", response_model=IngestionRunOut)
async def run_ingestion(request: Request, _: Operator) -> IngestionRunOut:
    """Fetch now what the Energy Data agreements in force cover and the store lacks (the background
    pass does the same every `[usage] ingest_interval_seconds`); the premises whose route cannot
    read usage are listed in `errors`, by route. 409 `ingestion_running` while another instance's
    pass runs (one at a time)."""
    report = await _service(request).run_once()
    return IngestionRunOut(agreements=report.agreements, premises=report.premises, reads=report.reads,
                           errors=report.errors)
