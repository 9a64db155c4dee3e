"""Usage data: ingestion from the premises' routes into the store, and the reads the API serves.

Ingestion (`UsageService.run_once`, every `[usage] ingest_interval_seconds` and on an operator's
POST /v1/usage-ingestion-runs) walks the Energy Data agreements in force: for each premise it
covers, it finds the 15-minute intervals of the agreement's period (up to now) that the store does
not hold, and asks the premise's route for those stretches only — so a head-end that was down, or
a gateway that was stopped, is caught up at the next pass (gaps refetched), and what is stored is
never fetched again. Reads are upserted: a re-sent read replaces the stored one.

A route without the operation (a radio whose meter has no GetProfile) is reported, by name, in the
run's errors (`UsageNotSupported`); so is a head-end that is down or whose answer was refused
(`UsageUnavailable`, `UsageAnswerInvalid`: nothing of that read is stored). Neither stops anything
else.

Continuous agreements: a pass that stored new intervals for premises an agreement covers records
one `usage.available` event for the agreement (its premises and the period of the new data), not
one per interval or premise — a catch-up of many premises is still one event per agreement.

One pass runs at a time, in an instance and across instances (a session-level advisory lock,
gateway/store/exclusive.py): the others skip their timer's pass while it runs, and an operator's
run then answers 409 `ingestion_running`. A pass cut short (the instance stopped or killed) leaves its gaps to the next.

Reads: 15-minute intervals as stored, or daily / monthly sums of them cut at local midnight in
America/Chicago (Texas), with a quality: `missing` when intervals of the period are not stored,
`estimated` when one is an estimate, else `actual`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ams_adapters.contract import Route
from ams_adapters.usage import Channel, UsageNotSupported, UsageUnavailable, read_usage
from gateway.agreements import USAGE_TIME_ZONE
from gateway.clock import Clock
from gateway.domain.model import AgreementKind, AgreementState, DataMode, UsageInterval
from gateway.domain.records import Agreement
from gateway.errors import Conflict, FieldError, InvalidRequest
from gateway.store import exclusive
from gateway.store.events import NewEvent, record_events, subject_of_agreement
from gateway.store.store import Store
from gateway.store.usage import StoredRead

log = logging.getLogger(__name__)

INTERVAL_S = 900
FETCH_SPAN_S = 7 * 86_400  # one route call asks for at most a week (672 intervals a channel)
AGREEMENTS_PAGE = 500
GAP_SCAN_INTERVALS = 192  # two days: below this a gap search reads the stored starts


class RouteLookup(Protocol):
    """What ingestion needs of the route set: the route of a premise (gateway.pipeline.RouteSet)."""

    def for_premise(self, esi_id: str) -> Route | None: ...


USAGE_AVAILABLE = "usage.available"
AVAILABLE_ESI_IDS = 100  # premises named in one usage.available event (`premises` counts them all)


@dataclass
class _Fetched:
    """What one run stored for a premise's period: reads, and the stretches they cover."""

    reads: int = 0
    spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class IngestReport:
    agreements: int = 0
    premises: int = 0
    reads: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)  # {esi_id, route, reason}


class IngestionRunning(Conflict):
    """A usage ingestion pass is running already: this instance's own, or another instance's on
    the same PostgreSQL."""


def _utc(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _missing_runs(stored: Sequence[datetime], start: int, end: int) -> list[tuple[int, int]]:
    """[a, b) stretches of 15-minute starts in [start, end) that `stored` lacks."""
    have = {int(s.timestamp()) for s in stored}
    runs: list[tuple[int, int]] = []
    for t in range(start, end, INTERVAL_S):
        if t in have:
            continue
        if runs and runs[-1][1] == t:
            runs[-1] = (runs[-1][0], t + INTERVAL_S)
        else:
            runs.append((t, t + INTERVAL_S))
    return runs


class UsageService:
    def __init__(self, store: Store, routes: RouteLookup | None, clock: Clock, *, concurrency: int = 8) -> None:
        self.store = store
        self.routes = routes
        self.clock = clock
        self.concurrency = concurrency  # premises read at once in a pass
        self._passing = False

    # -- ingestion ------------------------------------------------------------------------------

    async def fetch(self, esi_id: str, start: int, end: int, spans: list[tuple[int, int]] | None = None) -> int:
        """Read [start, end) from the premise's route and upsert it; the number of reads stored.
        `spans`: gets the [first start, last end) of what was stored, when anything was."""
        route = self.routes.for_premise(esi_id) if self.routes is not None else None
        if route is None:
            raise UsageUnavailable(f"no route reaches premise {esi_id}")
        stored = 0
        for a in range(start, end, FETCH_SPAN_S):
            reads = await read_usage(route, esi_id, a, min(end, a + FETCH_SPAN_S))
            received = self.clock.now()
            source = route.capabilities.name[:40]
            if spans is not None and reads:
                spans.append((min(r.start for r in reads), max(r.start + r.length_s for r in reads)))
            stored += await self.store.upsert_usage_reads([
                StoredRead(esi_id, r.channel.value, _utc(r.start), r.length_s, r.value_wh, r.quality.value,
                           source, received) for r in reads])
        return stored

    async def fill_gaps(self, esi_id: str, start: datetime, end: datetime,
                        spans: list[tuple[int, int]] | None = None) -> int:
        """Fetch the intervals of [start, end) the store lacks (consumption is the channel every
        premise has); the number of reads stored (their stretches appended to `spans`)."""
        a = int(start.timestamp()) // INTERVAL_S * INTERVAL_S
        b = int(end.timestamp()) // INTERVAL_S * INTERVAL_S  # only whole intervals that have ended
        if b <= a:
            return 0
        total = 0
        for run_start, run_end in await self.gaps(esi_id, a, b):
            total += await self.fetch(esi_id, run_start, run_end, spans)
        return total

    async def gaps(self, esi_id: str, a: int, b: int) -> list[tuple[int, int]]:
        """The stretches of [a, b) (on 15-minute boundaries) without a stored consumption interval.
        Halves the period while it is incomplete and longer than two days, counting (an index range
        count) rather than reading the starts: a year that is complete costs one count, not 35,000
        rows, at every pass."""
        expected = (b - a) // INTERVAL_S
        have = await self.store.count_usage_in(esi_id, Channel.CONSUMPTION.value, _utc(a), _utc(b))
        if have >= expected:
            return []
        if have == 0:
            return [(a, b)]
        if expected <= GAP_SCAN_INTERVALS:
            stored = await self.store.usage_starts(esi_id, Channel.CONSUMPTION.value, _utc(a), _utc(b))
            return _missing_runs(stored, a, b)
        mid = a + expected // 2 * INTERVAL_S
        first, second = await self.gaps(esi_id, a, mid), await self.gaps(esi_id, mid, b)
        if first and second and first[-1][1] == second[0][0]:  # one stretch across the halves
            return [*first[:-1], (first[-1][0], second[0][1]), *second[1:]]
        return first + second

    async def run_once(self) -> IngestReport:
        """One pass over the Energy Data agreements in force (see the module docstring), by one
        instance at a time: while another instance's pass runs, raises IngestionRunning (its reads
        reach the same store; two passes would fetch the same gaps)."""
        if self._passing:  # this instance's own pass (the timer's, or another operator's run)
            raise IngestionRunning("a usage ingestion pass is running; what it fetches reaches the store "
                                   "(try again when it is done)", code="ingestion_running")
        self._passing = True
        try:
            async with exclusive.one_at_a_time(self.store.engine, exclusive.USAGE_INGESTION) as mine:
                if not mine:
                    raise IngestionRunning("another gateway instance is running a usage ingestion pass; what "
                                           "it fetches reaches the same store (try again when it is done)",
                                           code="ingestion_running")
                return await self._pass()
        finally:
            self._passing = False

    async def _pass(self) -> IngestReport:
        now = self.clock.now()
        report = IngestReport()
        cursor: str | None = None
        done: dict[tuple[str, datetime, datetime], _Fetched] = {}
        while True:
            page = await self.store.list_agreements(kind=AgreementKind.ENERGY_DATA,
                                                    states=[AgreementState.ACTIVE], cursor=cursor,
                                                    limit=AGREEMENTS_PAGE)
            for agreement in page.items:
                if agreement.in_force(now):
                    report.agreements += 1
                    await self._fill_agreement(agreement, now, report, done)
            if page.next_cursor is None:
                return report
            cursor = page.next_cursor

    async def _fill_agreement(self, agreement: Agreement, now: datetime, report: IngestReport,
                              done: dict[tuple[str, datetime, datetime], _Fetched]) -> None:
        period = agreement.usage_period()
        if period is None:
            return
        start, end = period[0], min(period[1], now)
        new: dict[str, _Fetched] = {}
        room = asyncio.Semaphore(self.concurrency)

        async def read(esi_id: str, fetched: _Fetched) -> None:
            async with room:
                route = self.routes.for_premise(esi_id) if self.routes is not None else None
                name = route.capabilities.name if route is not None else "-"
                try:
                    fetched.reads = await self.fill_gaps(esi_id, start, end, fetched.spans)
                    report.reads += fetched.reads
                except UsageNotSupported as exc:
                    report.errors.append({"esi_id": esi_id, "route": exc.route, "reason": str(exc)})
                except UsageUnavailable as exc:
                    report.errors.append({"esi_id": esi_id, "route": name, "reason": exc.reason})
                except Exception as exc:  # a route's own failure is the route's: the other premises go on
                    log.exception("route %s failed reading usage of %s", name, esi_id)
                    report.errors.append({"esi_id": esi_id, "route": name, "reason": f"route error: {exc!r}"})

        # `concurrency` premises at once (their reads wait on their head-ends, not on each other).
        async with asyncio.TaskGroup() as reads:
            for covered in agreement.premises:
                key = (covered.esi_id, start, end)
                if key in done:  # two agreements over the same premise and period: one fetch
                    new[covered.esi_id] = done[key]
                    continue
                fetched = done[key] = new[covered.esi_id] = _Fetched()
                report.premises += 1
                reads.create_task(read(covered.esi_id, fetched))
        report.errors.sort(key=lambda e: e["esi_id"])  # the same order whatever finished first
        if agreement.data is not None and agreement.data.mode is DataMode.CONTINUOUS:
            await self._announce(agreement, new, now)

    async def _announce(self, agreement: Agreement, fetched: dict[str, _Fetched], now: datetime) -> None:
        """`usage.available`: one event for the agreement and this run, naming the premises that got
        new intervals and the period they fall in — not one per interval or premise (a run that
        catches up a year of 10,000 premises is one event, not 350 million)."""
        got = {esi: f for esi, f in fetched.items() if f.reads and f.spans}
        if not got:
            return
        first = min(a for f in got.values() for a, _b in f.spans)
        last = max(b for f in got.values() for _a, b in f.spans)
        esi_ids = sorted(got)
        event = NewEvent(agreement.party_id, USAGE_AVAILABLE, subject_of_agreement(agreement.id), {
            "agreement_id": agreement.id, "esi_ids": esi_ids[:AVAILABLE_ESI_IDS], "premises": len(esi_ids),
            "from": _utc(first).isoformat(), "to": _utc(last).isoformat(),
            "reads": sum(f.reads for f in got.values()), "at": now.isoformat()}, now)
        async with self.store.engine.begin() as conn:
            await record_events(conn, [event])

    # -- reads ----------------------------------------------------------------------------------

    async def intervals(self, esi_id: str, start: datetime, end: datetime, *, cursor: str | None,
                        limit: int) -> tuple[list[StoredRead], str | None]:
        after = _decode_interval_cursor(cursor)
        rows = await self.store.usage_page(esi_id, start, end, after=after, limit=limit)
        if len(rows) < limit:
            return rows, None
        last = rows[-1]
        return rows, f"{int(last.interval_start.timestamp())}{_CHANNEL_DIGIT[last.channel]}"

    async def aggregated(self, esi_id: str, start: datetime, end: datetime, interval: UsageInterval, *,
                         cursor: str | None, limit: int) -> tuple[list[Aggregate], str | None]:
        """Daily or monthly sums over [start, end) (local period boundaries), `limit` periods a page."""
        periods = _periods(start, end, interval)
        if cursor:
            at = _utc(int(cursor))
            periods = [p for p in periods if p[0] >= at]
        page, more = periods[:limit], len(periods) > limit
        if not page:
            return [], None
        sums: dict[tuple[datetime, str], list[int]] = {}  # (period, channel) -> [wh, count, estimated]
        bounds = [p[0] for p in page]
        after: tuple[datetime, str] | None = None
        while True:
            rows = await self.store.usage_page(esi_id, page[0][0], page[-1][1], after=after, limit=10_000)
            for row in rows:
                period = _period_of(bounds, row.interval_start)
                acc = sums.setdefault((period, row.channel), [0, 0, 0])
                acc[0] += row.value_wh
                acc[1] += row.quality != "missing"
                acc[2] += row.quality == "estimated"
            if len(rows) < 10_000:
                break
            after = (rows[-1].interval_start, rows[-1].channel)
        out: list[Aggregate] = []
        for p_start, p_end in page:
            expected = int((p_end - p_start).total_seconds()) // INTERVAL_S
            channels = [c for c in (Channel.CONSUMPTION.value, Channel.GENERATION.value) if (p_start, c) in sums]
            for channel in channels or [Channel.CONSUMPTION.value]:
                wh, count, estimated = sums.get((p_start, channel), [0, 0, 0])
                quality = "missing" if count < expected else "estimated" if estimated else "actual"
                out.append(Aggregate(p_start, p_end, channel, wh if count else None, quality, count, expected))
        next_cursor = str(int(periods[limit][0].timestamp())) if more else None
        return out, next_cursor


@dataclass(frozen=True)
class Aggregate:
    start: datetime
    end: datetime
    channel: str
    value_wh: int | None  # None: no interval of the period is stored
    quality: str
    intervals: int
    expected_intervals: int


_CHANNEL_DIGIT = {Channel.CONSUMPTION.value: "0", Channel.GENERATION.value: "1"}
_DIGIT_CHANNEL = {v: k for k, v in _CHANNEL_DIGIT.items()}


def _decode_interval_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    if len(cursor) < 2 or not cursor.isdigit() or cursor[-1] not in _DIGIT_CHANNEL:
        raise InvalidRequest("the cursor is not one this API returned", errors=[FieldError(
            "cursor", "invalid_cursor", "pass a next_cursor value from a previous page", cursor)])
    return _utc(int(cursor[:-1])), _DIGIT_CHANNEL[cursor[-1]]


def _local_midnight(moment: datetime) -> datetime:
    local = moment.astimezone(USAGE_TIME_ZONE)
    return datetime(local.year, local.month, local.day, tzinfo=USAGE_TIME_ZONE)


def _next_period(start: datetime, interval: UsageInterval) -> datetime:
    local = start.astimezone(USAGE_TIME_ZONE)
    if interval is UsageInterval.DAILY:
        nxt = local.date() + timedelta(days=1)
        return datetime(nxt.year, nxt.month, nxt.day, tzinfo=USAGE_TIME_ZONE).astimezone(UTC)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=USAGE_TIME_ZONE).astimezone(UTC)


def _periods(start: datetime, end: datetime, interval: UsageInterval) -> list[tuple[datetime, datetime]]:
    out = []
    at = start.astimezone(UTC)
    while at < end:
        nxt = _next_period(at, interval)
        out.append((at, min(nxt, end)))
        at = nxt
    return out


def _period_of(bounds: Sequence[datetime], moment: datetime) -> datetime:
    lo, hi = 0, len(bounds) - 1
    while lo < hi:  # the last bound <= moment
        mid = (lo + hi + 1) // 2
        if bounds[mid] <= moment:
            lo = mid
        else:
            hi = mid - 1
    return bounds[lo]


def check_period(start: datetime, end: datetime, interval: UsageInterval) -> None:
    """`from` and `to` of a usage read: ordered, and on the interval's boundaries (15 minutes; local
    midnight for daily; the 1st of a month, local midnight, for monthly)."""
    errors: list[FieldError] = []
    for name, value in (("from", start), ("to", end)):
        if interval is UsageInterval.MIN15:
            if int(value.timestamp()) % INTERVAL_S or value.microsecond:
                errors.append(FieldError(name, "not_on_interval_boundary", "on a 15-minute boundary",
                                         value.isoformat(), INTERVAL_S))
        elif _local_midnight(value) != value:
            errors.append(FieldError(name, "not_on_day_boundary", "local midnight in America/Chicago "
                                     "(e.g. 2026-07-01T00:00:00-05:00)", value.isoformat()))
        elif interval is UsageInterval.MONTHLY and value.astimezone(USAGE_TIME_ZONE).day != 1:
            errors.append(FieldError(name, "not_on_month_boundary", "the first day of a month, local "
                                     "midnight in America/Chicago", value.isoformat()))
    if not errors and start >= end:
        errors.append(FieldError("to", "period_empty", "after from", end.isoformat(), start.isoformat()))
    if errors:
        raise InvalidRequest(f"the usage period has {len(errors)} invalid field(s)", errors=errors)
