"""Bulk usage reports: `POST /v1/usage-reports` (202, produced in the background by a worker),
`GET /v1/usage-reports/{report_id}` (state and progress) and `GET …/{report_id}/file` (the file,
streamed from disk with its Content-Length). Only the party that asked sees a report; another
party gets what an unknown id gets (404). See gateway/usage_reports.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway.api.deps import Svc, ThirdParty
from gateway.api.params import MAX_ID, DbId
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import PROBLEM_RESPONSES
from gateway.domain.esi_id import ESI_ID_PATTERN
from gateway.domain.model import UsageInterval
from gateway.errors import NotFound
from gateway.store import usage_reports as reports_store
from gateway.store.usage_reports import DONE, EXPIRED, UsageReport
from gateway.usage_reports import (
    FORMATS,
    MAX_AGREEMENTS,
    MAX_ESI_IDS,
    ReportExpired,
    ReportNotReady,
    UsageReports,
    report_path,
)

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["usage"])


class UsageReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    agreement_ids: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None, Field(
        max_length=MAX_AGREEMENTS, description="every premise of these Energy Data agreements of yours")] = None
    esi_ids: Annotated[list[Annotated[str, Field(pattern=ESI_ID_PATTERN)]] | None, Field(
        max_length=MAX_ESI_IDS, description="or these premises, each covered by one of your agreements")] = None
    start: AwareDatetime = Field(alias="from", description="start of the period (with its UTC offset)")
    end: AwareDatetime = Field(alias="to", description="end of the period (exclusive)")
    interval: UsageInterval = UsageInterval.MIN15
    format: Literal["csv", "espi"] = Field(default="csv", description="csv, or espi (Green Button, 15min only)")


class UsageReportOut(BaseModel):
    id: int
    state: str  # queued | running | done | failed | expired
    format: str
    interval: str
    start: datetime
    end: datetime
    premises_total: int
    premises_done: int
    rows_written: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    file_url: str | None  # when done
    file_bytes: int | None
    expires_at: datetime | None  # when the file is deleted (done), or was (expired)
    error: str | None


def _out(report: UsageReport) -> UsageReportOut:
    return UsageReportOut(
        id=report.id, state=report.state, format=report.format, interval=report.interval,
        start=report.period_start, end=report.period_end, premises_total=report.premises_total,
        premises_done=report.premises_done, rows_written=report.rows_written, created_at=report.created_at,
        started_at=report.started_at, finished_at=report.finished_at,
        file_url=f"/v1/usage-reports/{report.id}/file" if report.state == DONE else None,
        file_bytes=report.file_bytes if report.state == DONE else None, expires_at=report.expires_at,
        error=report.error)


async def _own(svc: Svc, who: ThirdParty, report_id: int) -> UsageReport:
    """The policy let only the owner in; a row gone since is unknown too."""
    report = await reports_store.get_report(svc.store.engine, report_id)
    if report is None or report.party_id != who.party_id:
        raise NotFound(f"no usage report {report_id}", code="unknown_usage_report")
    return report


@router.post("/usage-reports", status_code=202, response_model=UsageReportOut)
async def create_report(body: UsageReportIn, request: Request, svc: Svc, who: ThirdParty) -> UsageReportOut:
    """Ask for the usage of many premises over a period as one file (CSV, or Green Button ESPI for 15-minute data),
    produced in the background: poll `GET /v1/usage-reports/{id}`, then fetch its `file_url`."""
    reports = UsageReports(svc.store, svc.clock)
    report = await reports.request(who, agreement_ids=body.agreement_ids, esi_ids=body.esi_ids, start=body.start,
                                   end=body.end, interval=body.interval, fmt=body.format)
    worker = getattr(request.app.state, "report_worker", None)
    if worker is not None:
        worker.wake()
    return _out(report)


@router.get("/usage-reports/{report_id}", response_model=UsageReportOut)
async def get_report(report_id: DbId, svc: Svc, who: ThirdParty) -> UsageReportOut:
    """The report's state (queued, running, done, failed, expired) and progress."""
    return _out(await _own(svc, who, report_id))


@router.get("/usage-reports/{report_id}/file", response_class=FileResponse, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the report's file"}})
async def report_file(report_id: DbId, svc: Svc, who: ThirdParty) -> FileResponse:
    """The finished report's file, streamed from disk (409 before it is done, 410 once deleted)."""
    report = await _own(svc, who, report_id)
    if report.state == EXPIRED:
        raise ReportExpired(f"usage report {report_id}'s file was deleted at {report.expires_at}")
    path = report_path(svc.config.data_dir, report)
    if report.state != DONE or path is None:
        raise ReportNotReady(f"usage report {report_id} is {report.state}, its file is not ready")
    if not path.is_file():
        raise ReportExpired(f"usage report {report_id}'s file is gone")
    return FileResponse(path, media_type=FORMATS[report.format].media_type, filename=path.name)
