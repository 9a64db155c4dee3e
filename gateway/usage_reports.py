"""Bulk usage reports (issue 16, "Bulk"): a party asks for the usage of many premises over a period
as one file, produced in the background by the worker role, with its progress visible.

Asking (`UsageReports.request`): the premises are all those of one or more of the party's Energy
Data agreements (each in force, of the party, granting the interval and covering the period), or an
explicit list, each checked as the usage endpoint checks it (`gateway.authz.usage_grant`). Anything
refused is refused at once, typed, naming the agreement or premise; nothing is queued then.

Producing (`ReportWorker`): a worker claims a due report with a lease (gateway/store/usage_reports.py)
and writes it to `<data_dir>/usage-reports/report-<id>-<attempt>.part`, premises in chunks; after
each chunk it records the progress and extends its lease. A worker that dies stops extending; once
the lease is over another worker claims the report and restarts it from its first premise (the
partial file of the dead attempt is deleted). The finished file is renamed `report-<id>.<ext>`,
kept `[usage] report_retention_days`, then deleted (state `expired`).

Before each chunk the premises' agreements are read again: the data of an agreement that ended
meanwhile stops where it ended — a continuous agreement's at the moment it ended, a one-time
agreement's (a past period) entirely for the premises not yet written (ENERGY_DATA.md §1.2:
delivery stops, what was delivered stays).

Formats are pluggable (`FORMATS`): a `ReportFormat` names a `RowWriter`, an async generator that
takes the rows in (esi_id, channel, interval start) order and yields the file's bytes. `csv` is
built, and `espi` (Green Button: the streaming ESPI writer of gateway/greenbutton, 15-minute data).
Both have a fast path in the store, where the store makes the text (COPY on PostgreSQL, render
processes on a SQLite file: gateway/store/sqlite_reports.py), measured in benchmarks/usage.py; the
generic path (`stream_reads` into the format's writer) serves the rest (an in-memory SQLite).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import io
import logging
import os
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from gateway.agreements import USAGE_TIME_ZONE
from gateway.authz import usage_agreements, usage_grant
from gateway.clock import Clock
from gateway.domain.model import Action, AgreementKind, DataMode, UsageInterval, interval_granted
from gateway.domain.records import Agreement, Principal
from gateway.errors import FieldError, Forbidden, InvalidRequest, NotFound
from gateway.greenbutton import CONTENT_TYPE as ESPI_CONTENT_TYPE
from gateway.greenbutton import FeedLinks, espi_feed
from gateway.greenbutton.writer import Block, espi_feed_blocks
from gateway.store import usage_reports as reports_store
from gateway.store.store import Store
from gateway.store.usage import StoredRead
from gateway.store.usage_reports import (
    CSV_HEADER,
    CsvFastPath,
    EspiFastPath,
    PremiseSpan,
    RenderedBlock,
    ReportPremise,
    UsageReport,
)
from gateway.usage import UsageService, check_period

log = logging.getLogger(__name__)

MAX_AGREEMENTS = 100  # agreements a report may name
MAX_ESI_IDS = 1000  # premises an explicit list may name (each is checked at request time)
REPORTS_DIR = "usage-reports"

@dataclass(frozen=True)
class ReportContext:
    """What a format's writer may need besides the rows: the report (id, party, period,
    interval), its premises in order (e.g. one ESPI UsagePoint each, with or without rows), and the
    time production started (e.g. a feed's `updated`)."""

    report: UsageReport
    esi_ids: Sequence[str]
    now: datetime
    public_url: str = ""
    """The gateway's public URL (the ESPI feed's links)."""


RowWriter = Callable[[AsyncIterator[StoredRead], ReportContext], AsyncIterator[bytes]]
"""A format: the rows of a report in (esi_id, channel, interval start) order -> the file's bytes."""


@dataclass(frozen=True)
class ReportFormat:
    name: str
    media_type: str
    extension: str
    writer: RowWriter
    intervals: tuple[UsageInterval, ...] = (UsageInterval.MIN15,)  # the intervals the writer takes rows of


class ReportNotReady(InvalidRequest):
    status = 409
    code = "report_not_ready"
    title = "The report's file is not ready"


class ReportExpired(InvalidRequest):
    status = 410
    code = "report_expired"
    title = "The report's file was deleted after its retention"


def _csv_line(esi_id: str, start: datetime, end: datetime, *, channel: str, value: int | None, quality: str,
              intervals: int, expected: int) -> str:
    """One row as the usage endpoint's CSV writes it, with the premise in front."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([
        esi_id, start.astimezone(USAGE_TIME_ZONE).isoformat(), end.astimezone(USAGE_TIME_ZONE).isoformat(),
        start.astimezone(UTC).isoformat(), channel, "" if value is None else value, "Wh", quality, intervals,
        expected])
    return out.getvalue()


async def csv_writer(rows: AsyncIterator[StoredRead], context: ReportContext | None = None) -> AsyncIterator[bytes]:
    """CSV of 15-minute reads (the generic path; the store's fast paths write the same bytes);
    the header is the worker's (written before the rows, as for the fast paths)."""
    del context  # CSV needs nothing but the rows
    lines: list[str] = []
    async for r in rows:
        lines.append(_csv_line(r.esi_id, r.interval_start, r.interval_start + timedelta(seconds=r.length_s),
                               channel=r.channel, value=None if r.quality == "missing" else r.value_wh,
                               quality=r.quality, intervals=1, expected=1))
        if len(lines) >= 5000:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()


CSV = ReportFormat("csv", "text/csv; charset=utf-8; header=present", "csv", csv_writer,
                   (UsageInterval.MIN15, UsageInterval.DAILY, UsageInterval.MONTHLY))



def _espi_links(context: ReportContext) -> FeedLinks:
    # The UsagePoints' collection is named after ESPI's bulk resource (`Batch/Bulk/{report id}`),
    # which the gateway does not serve (docs/green-button.md).
    base = f"{context.public_url.rstrip('/')}/espi/1_1/resource"
    return FeedLinks(resource_base=base, usage_points=f"{base}/Batch/Bulk/{context.report.id}/UsagePoint",
                     self_href=f"{context.public_url.rstrip('/')}/v1/usage-reports/{context.report.id}/file",
                     title=f"Usage report {context.report.id}")


def espi_writer(rows: AsyncIterator[StoredRead], context: ReportContext) -> AsyncIterator[bytes]:
    """A Green Button (ESPI) Atom feed of the report (gateway.greenbutton.espi_feed, the Connect My
    Data feed's writer): one UsagePoint per premise of the report, with or without rows, and its
    15-minute IntervalBlocks per local day. (On PostgreSQL and a SQLite file the worker has the
    store render the blocks instead: `ReportWorker._espi_blocks`, the same document.)"""
    return espi_feed(rows, links=_espi_links(context), updated=context.now, usage_points=context.esi_ids)


ESPI = ReportFormat("espi", ESPI_CONTENT_TYPE, "xml", espi_writer)  # 15-minute data only
FORMATS: dict[str, ReportFormat] = {"csv": CSV, "espi": ESPI}


def data_end(agreement: Agreement | None, start: datetime, end: datetime, now: datetime) -> datetime:
    """Where a premise's data stops in a report over [start, end) under `agreement` (None: the
    agreement is gone): `end` while it is in force; else where it ended (module docstring)."""
    if agreement is None:
        return start
    if agreement.in_force(now):
        return end
    if agreement.data is None or agreement.data.mode is DataMode.ONE_TIME:
        return start
    stop = agreement.ended_at or agreement.ends_at or start
    return max(start, min(end, stop))


class UsageReports:
    """Asking for reports (the API's side)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def request(self, who: Principal, *, agreement_ids: Sequence[int] | None, esi_ids: Sequence[str] | None,
                      start: datetime, end: datetime, interval: UsageInterval, fmt: str) -> UsageReport:
        if fmt not in FORMATS:  # (the API's schema admits only these; a caller in code may not)
            raise InvalidRequest(f"format {fmt} is not one of {', '.join(FORMATS)}", errors=[
                FieldError("format", "unknown_format", f"one of {', '.join(FORMATS)}", fmt)])
        if interval not in FORMATS[fmt].intervals:
            raise InvalidRequest(f"format {fmt} takes {', '.join(FORMATS[fmt].intervals)} only", errors=[
                FieldError("interval", "interval_not_supported_by_format", f"one of "
                           f"{', '.join(FORMATS[fmt].intervals)}", interval.value)])
        _one_of(agreement_ids, esi_ids)
        check_period(start, end, interval)
        if who.party_id is None:
            raise Forbidden("usage reports are asked for by a third party", code="third_party_only")
        now = self.clock.now()
        if agreement_ids:
            premises = await self._by_agreements(who.party_id, agreement_ids, start, end, interval=interval, now=now)
        else:
            premises = await self._by_premises(who, esi_ids or [], start, end, interval=interval, now=now)
        return await reports_store.create_report(self.store.engine, party_id=who.party_id, fmt=fmt,
                                                 interval=interval.value, start=start, end=end,
                                                 premises=premises, now=now)

    async def _by_agreements(self, party_id: int, ids: Sequence[int], start: datetime, end: datetime, *,
                             interval: UsageInterval, now: datetime) -> list[ReportPremise]:
        found: dict[str, ReportPremise] = {}
        for i, agreement_id in enumerate(ids):
            field = f"agreement_ids[{i}]"
            agreement = await self.store.get_agreement(agreement_id)
            if agreement is None or agreement.party_id != party_id:
                raise NotFound(f"no agreement {agreement_id}", code="unknown_agreement",
                               errors=[FieldError(field, "unknown_agreement", "an agreement of yours", agreement_id)])
            if agreement.kind is not AgreementKind.ENERGY_DATA:
                raise Forbidden(f"agreement {agreement_id} is {agreement.kind.value}, not energy_data",
                                code="wrong_agreement_kind", errors=[FieldError(
                                    field, "wrong_agreement_kind", "an energy_data agreement", agreement_id)])
            if not agreement.in_force(now):
                raise Forbidden(f"agreement {agreement_id} is not in force ({agreement.state.value})",
                                code="agreement_not_in_force", errors=[FieldError(
                                    field, "agreement_not_in_force", "an agreement in force", agreement_id)])
            assert agreement.data is not None  # energy_data agreements carry their terms
            if not interval_granted(agreement.data.interval, interval):
                raise Forbidden(f"agreement {agreement_id} grants {agreement.data.interval.value} data, not "
                                f"{interval.value}", code="interval_not_granted", errors=[FieldError(
                                    "interval", "interval_not_granted", f"{agreement.data.interval.value} or "
                                    "coarser", interval.value)])
            period = agreement.usage_period()
            if period is None or not (period[0] <= start and end <= period[1]):
                covered = f"{period[0].isoformat()} to {period[1].isoformat()}" if period else "nothing yet"
                raise Forbidden(f"agreement {agreement_id} covers {covered}, not {start.isoformat()} to "
                                f"{end.isoformat()}", code="period_not_covered", errors=[FieldError(
                                    "from", "period_not_covered", f"inside {covered}", start.isoformat())])
            for premise in agreement.premises:
                found.setdefault(premise.esi_id, ReportPremise(premise.esi_id, agreement.id))
        return [found[e] for e in sorted(found)]

    async def _by_premises(self, who: Principal, esi_ids: Sequence[str], start: datetime, end: datetime, *,
                           interval: UsageInterval, now: datetime) -> list[ReportPremise]:
        found: dict[str, ReportPremise] = {}
        for i, esi_id in enumerate(esi_ids):
            field = f"esi_ids[{i}]"
            premise = await self.store.get_premise(esi_id)
            in_force = (await usage_agreements(self.store, who, esi_id, now)
                        if premise is not None and premise.status == "active" else [])
            decision = usage_grant(in_force, start, end, interval)
            if not decision.allowed:
                await self.store.append_audit(at=now, principal=who, action=Action.READ_USAGE.value, esi_id=esi_id,
                                              device_eui64=None, agreement_id=decision.agreement_id, allowed=False,
                                              reason=decision.reason)
            if not decision.visible:
                raise NotFound(f"no premise {esi_id} visible to you", code="unknown_premise",
                               errors=[FieldError(field, "unknown_premise", "a premise of your agreements", esi_id)])
            if not decision.allowed:
                raise Forbidden(f"read_usage of {esi_id} from {start.isoformat()} to {end.isoformat()} at "
                                f"{interval.value} refused: {decision.reason}", code=decision.reason,
                                errors=[FieldError(field, decision.reason, "a premise and period your Energy "
                                                   "Data agreement covers", esi_id)])
            found.setdefault(esi_id, ReportPremise(esi_id, decision.agreement_id))
        return [found[e] for e in sorted(found)]


def _one_of(agreement_ids: Sequence[int] | None, esi_ids: Sequence[str] | None) -> None:
    if bool(agreement_ids) == bool(esi_ids):
        raise InvalidRequest("name the premises by agreement_ids or by esi_ids (one of them)", errors=[
            FieldError("agreement_ids", "one_of_required", "agreement_ids or esi_ids, not both, not neither",
                       None)])
    if agreement_ids and len(agreement_ids) > MAX_AGREEMENTS:
        raise InvalidRequest("too many agreements", errors=[FieldError(
            "agreement_ids", "too_many", f"at most {MAX_AGREEMENTS}", len(agreement_ids), MAX_AGREEMENTS)])
    if esi_ids and len(esi_ids) > MAX_ESI_IDS:
        raise InvalidRequest("too many premises", errors=[FieldError(
            "esi_ids", "too_many", f"at most {MAX_ESI_IDS} (name agreements for more)", len(esi_ids), MAX_ESI_IDS)])


def report_path(data_dir: Path, report: UsageReport) -> Path | None:
    """The finished report's file (None: not finished)."""
    return data_dir / REPORTS_DIR / report.file_name if report.file_name else None


class _LostClaim(Exception):
    """Another worker took the report over (this one's lease ran out): stop, drop the partial file."""


class ReportWorker:
    """Produces the due reports, one at a time, and deletes the files whose retention is over."""

    def __init__(self, store: Store, usage: UsageService, clock: Clock, data_dir: Path, *, lease: timedelta,
                 retention: timedelta, chunk_premises: int = 250, public_url: str = "") -> None:
        self.store = store
        self.public_url = public_url
        self.usage = usage
        self.clock = clock
        self.dir = data_dir / REPORTS_DIR
        self.lease = lease
        self.retention = retention
        self.chunk = chunk_premises
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A report was asked for in this process: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, poll_seconds: float) -> None:
        """Until cancelled: produce what is due, delete what expired, then wait for a wake or a poll."""
        while True:
            try:
                while await self.run_once():
                    pass
            except Exception:  # a failed pass is logged and retried at the next poll
                log.exception("usage report pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            self._wake.clear()

    async def run_once(self) -> bool:
        """Expire old files, then produce one due report; whether a report was claimed."""
        await self.expire()
        report = await reports_store.claim_report(self.store.engine, self.clock.now(), self.lease)
        if report is None:
            return False
        try:
            await self.produce(report)
        except asyncio.CancelledError:  # a graceful stop: hand it back for another worker to restart at once
            await reports_store.release_report(self.store.engine, report, self.clock.now())
            raise
        except _LostClaim:
            log.warning("usage report %d: taken over by another worker, this attempt stopped", report.id)
        except Exception as exc:
            log.exception("usage report %d failed", report.id)
            await reports_store.fail_report(self.store.engine, report, f"{type(exc).__name__}: {exc}",
                                            self.clock.now())
        return True

    async def produce(self, report: UsageReport) -> None:
        fmt = FORMATS[report.format]
        premises = await reports_store.report_premises(self.store.engine, report.id)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(f"report-{report.id}-*.part"):  # a dead attempt's
            stale.unlink(missing_ok=True)
        partial = self.dir / f"report-{report.id}-{report.attempts}.part"
        progress = _Progress()
        context = ReportContext(report, [p.esi_id for p in premises], self.clock.now(), self.public_url)
        try:
            async with reports_store.renderers(self.store.engine):
                await self._produce_into(report, fmt, premises, partial=partial, progress=progress, context=context)
            final = self.dir / f"report-{report.id}.{fmt.extension}"
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            # Chunks made and not yet appended (every chunk task has ended by now: `_fast_csv`'s
            # task group, `_ahead`).
            for made in self.dir.glob(f"report-{report.id}-{report.attempts}.chunk-*.part"):
                made.unlink(missing_ok=True)
            raise
        now = self.clock.now()
        if not await reports_store.finish_report(
                self.store.engine, report, premises_done=progress.premises, rows_written=progress.rows,
                file_name=final.name, file_bytes=final.stat().st_size, now=now, expires_at=now + self.retention):
            raise _LostClaim()

    async def _produce_into(self, report: UsageReport, fmt: ReportFormat, premises: Sequence[ReportPremise], *,
                            partial: Path, progress: _Progress, context: ReportContext) -> None:
        with partial.open("wb") as out:
            if fmt is CSV:
                out.write(CSV_HEADER.encode())
                fast = reports_store.csv_fast_path(self.store.engine)
                if report.interval == UsageInterval.MIN15.value and fast is not None:
                    await self._fast_csv(report, premises, out, progress, fast=fast, partial=partial)
                elif report.interval == UsageInterval.MIN15.value:
                    await self._write(fmt.writer(self._rows(report, premises, progress), context), out)
                else:
                    await self._write(self._aggregates(report, premises, progress), out)
            elif fmt is ESPI and (render := reports_store.espi_fast_path(self.store.engine)) is not None:
                await self._write(espi_feed_blocks(
                    self._espi_blocks(report, premises, progress, render), links=_espi_links(context),
                    updated=context.now, usage_points=context.esi_ids), out)
            else:
                await self._write(fmt.writer(self._rows(report, premises, progress), context), out)

    async def _write(self, chunks: AsyncIterator[bytes], out: IO[bytes]) -> None:
        async for chunk in chunks:
            out.write(chunk)

    async def _spans(self, report: UsageReport, chunk: Sequence[ReportPremise]) -> list[PremiseSpan]:
        """Each premise's [start, end) now: its agreement read again (one that ended stops its data)."""
        now = self.clock.now()
        agreements: dict[int, Agreement | None] = {}
        spans = []
        for premise in chunk:
            end = report.period_end
            if premise.agreement_id is not None:
                if premise.agreement_id not in agreements:
                    agreements[premise.agreement_id] = await self.store.get_agreement(premise.agreement_id)
                end = data_end(agreements[premise.agreement_id], report.period_start, report.period_end, now)
            spans.append(PremiseSpan(premise.esi_id, report.period_start, end))
        return spans

    async def _checkpoint(self, report: UsageReport, progress: _Progress) -> None:
        if not await reports_store.checkpoint(self.store.engine, report, premises_done=progress.premises,
                                              rows_written=progress.rows,
                                              lease_until=self.clock.now() + self.lease):
            raise _LostClaim()

    def _chunks(self, premises: Sequence[ReportPremise]) -> list[Sequence[ReportPremise]]:
        return [premises[i:i + self.chunk] for i in range(0, len(premises), self.chunk)]

    async def _fast_csv(self, report: UsageReport, premises: Sequence[ReportPremise], out: IO[bytes],
                        progress: _Progress, *, fast: CsvFastPath, partial: Path) -> None:
        """The store's CSV fast path, `fast.parallel` chunks at a time: the first of them appended
        straight to the report's file, the others each into a file of its own, appended after it
        (the premises' order kept). Each chunk into a file of its own cost the copy of the whole
        report once more (measured on PostgreSQL, 10,000 premises: 29.5 s this way, 35.3 s that way)."""
        chunks = self._chunks(premises)
        for at in range(0, len(chunks), fast.parallel):
            group = chunks[at:at + fast.parallel]
            targets = [partial] + [self._scratch(report, at + k) for k in range(1, len(group))]
            out.flush()  # the file's bytes so far are on disk before another descriptor appends
            try:
                async with asyncio.TaskGroup() as tasks:  # one failing stops the other, and both end here
                    made = [tasks.create_task(self._copy_chunk(report, chunk, fast, target))
                            for chunk, target in zip(group, targets, strict=True)]
                for extra in targets[1:]:
                    await asyncio.to_thread(_append, extra, out)
            finally:
                for extra in targets[1:]:
                    extra.unlink(missing_ok=True)
            out.seek(0, os.SEEK_END)
            progress.rows += sum(task.result() for task in made)
            progress.premises += sum(len(chunk) for chunk in group)
            await self._checkpoint(report, progress)

    async def _copy_chunk(self, report: UsageReport, chunk: Sequence[ReportPremise], fast: CsvFastPath,
                          target: Path) -> int:
        spans = [s for s in await self._spans(report, chunk) if s.start < s.end]
        return await fast.copy(spans, target)

    def _scratch(self, report: UsageReport, i: int) -> Path:
        """A chunk's file (a `.part` of the attempt: a later attempt removes what a dead one left)."""
        return self.dir / f"report-{report.id}-{report.attempts}.chunk-{i}.part"

    async def _rows(self, report: UsageReport, premises: Sequence[ReportPremise],
                    progress: _Progress) -> AsyncIterator[StoredRead]:
        for chunk in self._chunks(premises):
            spans = await self._spans(report, chunk)
            async for page in reports_store.stream_reads(self.store.engine, spans):
                progress.rows += len(page)
                for row in page:
                    yield row
            progress.premises += len(chunk)
            await self._checkpoint(report, progress)

    async def _espi_blocks(self, report: UsageReport, premises: Sequence[ReportPremise], progress: _Progress,
                           render: EspiFastPath) -> AsyncIterator[Block]:
        """The report's Green Button blocks rendered by the store, chunk by chunk; the next chunks
        (`render.ahead`) are rendered while this one's are written."""
        async def chunk_of(i: int, chunk: Sequence[ReportPremise]) -> tuple[list[RenderedBlock], int]:
            spans = [s for s in await self._spans(report, chunk) if s.start < s.end]
            return await render.render(spans, self._scratch(report, i))

        async with contextlib.aclosing(_ahead(self._chunks(premises), chunk_of, render.ahead)) as done:
            days: dict[str, date] = {}  # a report's premises share their days and mostly their times
            times: dict[int, datetime] = {}
            async for chunk, (blocks, rows) in done:
                for esi_id, channel, day, readings, newest in blocks:
                    on = days.get(day) or days.setdefault(day, date.fromisoformat(day))
                    if len(times) > 10_000:  # times of their own: kept bounded
                        times.clear()
                    at = None if newest is None else (times.get(newest)
                                                      or times.setdefault(newest, datetime.fromtimestamp(newest, UTC)))
                    yield Block(esi_id, channel, on, readings, at)
                progress.rows += rows
                progress.premises += len(chunk)
                await self._checkpoint(report, progress)

    async def _aggregates(self, report: UsageReport, premises: Sequence[ReportPremise],
                          progress: _Progress) -> AsyncIterator[bytes]:
        """Daily or monthly sums per premise, as the usage endpoint computes them."""
        interval = UsageInterval(report.interval)
        for chunk in self._chunks(premises):
            for span in await self._spans(report, chunk):
                if span.end <= span.start:
                    continue
                cursor: str | None = None
                while True:
                    items, cursor = await self.usage.aggregated(span.esi_id, span.start, span.end, interval,
                                                                cursor=cursor, limit=500)
                    progress.rows += len(items)
                    yield "".join(_csv_line(span.esi_id, a.start, a.end, channel=a.channel, value=a.value_wh,
                                            quality=a.quality, intervals=a.intervals,
                                            expected=a.expected_intervals) for a in items).encode()
                    if cursor is None:
                        break
            progress.premises += len(chunk)
            await self._checkpoint(report, progress)

    async def expire(self) -> int:
        """Delete the files whose retention is over; their reports say `expired`."""
        gone = 0
        for report in await reports_store.expired_reports(self.store.engine, self.clock.now()):
            if report.file_name:
                (self.dir / report.file_name).unlink(missing_ok=True)
            await reports_store.mark_expired(self.store.engine, report.id)
            gone += 1
        return gone


def _append(path: Path, out: IO[bytes]) -> None:
    """Append the whole file `path` to `out`: in the kernel (copy_file_range) where it can, the
    rest through a buffer (shutil). A chunk is hundreds of MB: not copied through Python if avoidable."""
    out.flush()
    out.seek(0, os.SEEK_END)  # past what another descriptor appended meanwhile
    with path.open("rb") as source:
        size = os.fstat(source.fileno()).st_size
        copied = 0
        with contextlib.suppress(OSError):  # a file system or kernel without it: the plain copy below
            while copied < size:
                done = os.copy_file_range(source.fileno(), out.fileno(), size - copied)
                if done == 0:
                    break
                copied += done
        source.seek(copied)
        shutil.copyfileobj(source, out, 1 << 20)
    out.seek(0, os.SEEK_END)  # the buffered writer's own idea of its position, after the kernel's writes


_C = TypeVar("_C")
_R = TypeVar("_R")


async def _ahead(chunks: Sequence[_C], make: Callable[[int, _C], Coroutine[Any, Any, _R]],
                 ahead: int) -> AsyncGenerator[tuple[_C, _R], None]:
    """Each chunk with `make(i, chunk)`'s result, in order, while up to `ahead` chunks (at least
    one) are in the making. The ones still in the making when the consumer stops are cancelled."""
    pending: collections.deque[asyncio.Task[_R]] = collections.deque(
        asyncio.create_task(make(i, c)) for i, c in enumerate(chunks[:max(1, ahead)]))
    try:
        for i, chunk in enumerate(chunks):
            result = await pending.popleft()
            if (following := i + len(pending) + 1) < len(chunks):
                pending.append(asyncio.create_task(make(following, chunks[following])))
            yield chunk, result
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task


@dataclass
class _Progress:
    premises: int = 0
    rows: int = 0
