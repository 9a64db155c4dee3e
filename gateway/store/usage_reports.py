"""Bulk usage reports (table `usage_reports`): the job rows, their claims, and the streamed reads a
report is made of.

Jobs are claimed with a lease like the other queues (gateway/store/row_claims.py): `next_attempt_at`
is when a queued report is due, or when a running report's claim runs out; `attempts` is the
fencing token. The producing worker extends its lease at every checkpoint (with the progress), so
a worker that dies leaves a report that another takes over once the lease is over; a worker that
outlived its lease finds `attempts` moved on and drops its work.

The rows of a report are streamed in (esi_id, channel, interval start) order — the primary key's
order, so no sort — and written as they come, never held:

- PostgreSQL: `COPY (SELECT <the CSV line>) TO STDOUT` through asyncpg (`copy_from_query`), the CSV
  made by the server (times formatted in the America/Chicago session zone) straight into a chunk's
  file; two chunks at a time on two connections (the work is the server's: two backends, two cores).
  Measured (benchmarks/usage.py) against reading the rows as Python tuples, which is slower than
  the whole COPY export: formatting in Python was never a candidate on PostgreSQL.
- SQLite: the text made by SQLite in worker processes, a chunk each, into the chunk's file
  (gateway/store/sqlite_reports.py says why processes and how).
- Any other format (pluggable, gateway/usage_reports.py): keyset pages of `StoredRead`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import row_claims, sqlite_reports
from gateway.store.events import NewEvent, record_events
from gateway.store.schema import usage_reads, usage_reports
from gateway.store.usage import StoredRead

QUEUED, RUNNING, DONE, FAILED, EXPIRED = "queued", "running", "done", "failed", "expired"
TIME_ZONE = "America/Chicago"  # gateway.agreements.USAGE_TIME_ZONE (the store does not import the domain)
_ZONE = ZoneInfo(TIME_ZONE)
KEYSET_PAGE = 10_000  # rows a keyset page (the generic path)
INTERVAL_S = 900
MAX_ATTEMPTS = 5  # claims of one report (each a worker that took it); then it is failed


@dataclass(frozen=True)
class ReportPremise:
    esi_id: str
    agreement_id: int | None  # None: asked for by the operator (no agreement limits it)


@dataclass(frozen=True)
class UsageReport:
    id: int
    party_id: int
    state: str
    format: str
    interval: str
    period_start: datetime
    period_end: datetime
    premises_total: int
    premises_done: int
    rows_written: int
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    file_name: str | None
    file_bytes: int | None
    expires_at: datetime | None
    error: str | None


_STATUS_COLUMNS = [c for c in usage_reports.c if c.name not in ("premises", "next_attempt_at")]


def _report(row: Any) -> UsageReport:
    return UsageReport(**{c.name: getattr(row, c.name) for c in _STATUS_COLUMNS})


async def create_report(engine: AsyncEngine, *, party_id: int, fmt: str, interval: str, start: datetime,
                        end: datetime, premises: Sequence[ReportPremise], now: datetime) -> UsageReport:
    """Queue a report, due at once."""
    body = json.dumps([[p.esi_id, p.agreement_id] for p in premises], separators=(",", ":"))
    async with engine.begin() as conn:
        row = (await conn.execute(usage_reports.insert().values(
            party_id=party_id, state=QUEUED, format=fmt, interval=interval, period_start=start,
            period_end=end, premises=body, premises_total=len(premises), premises_done=0, rows_written=0,
            attempts=0, next_attempt_at=now, created_at=now).returning(*_STATUS_COLUMNS))).one()
    return _report(row)


async def get_report(engine: AsyncEngine, report_id: int) -> UsageReport | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(*_STATUS_COLUMNS).where(usage_reports.c.id == report_id))).first()
    return None if row is None else _report(row)


async def report_premises(engine: AsyncEngine, report_id: int) -> list[ReportPremise]:
    async with engine.connect() as conn:
        body = (await conn.execute(sa.select(usage_reports.c.premises).where(
            usage_reports.c.id == report_id))).scalar_one()
    return [ReportPremise(e, a) for e, a in json.loads(body)]


async def claim_report(engine: AsyncEngine, now: datetime, lease: timedelta) -> UsageReport | None:
    """Claim the oldest due report (queued, or running with its lease over: its worker died) for
    one attempt, until `now + lease`; it restarts from its first premise."""
    due = sa.and_(usage_reports.c.next_attempt_at <= now, usage_reports.c.state.in_([QUEUED, RUNNING]))
    async with engine.begin() as conn:
        # A report whose every attempt died with its worker (e.g. killed for memory) is given up,
        # not handed from worker to worker for ever.
        await conn.execute(usage_reports.update().where(due, usage_reports.c.attempts >= MAX_ATTEMPTS).values(
            state=FAILED, next_attempt_at=None, finished_at=now,
            error=f"given up after {MAX_ATTEMPTS} attempts whose workers stopped before finishing"))
        rows = await row_claims.claim(conn, usage_reports, row_claims.claimable(
            usage_reports, due, order_by=[usage_reports.c.next_attempt_at, usage_reports.c.id], limit=1),
            lease_until=now + lease, state=RUNNING, started_at=now, premises_done=0, rows_written=0)
    return _report(rows[0]) if rows else None


async def checkpoint(engine: AsyncEngine, report: UsageReport, *, premises_done: int, rows_written: int,
                     lease_until: datetime) -> bool:
    """Record the progress and move the lease on, while the claim is still this one's; False: the
    lease ran out and another worker took the report over (this one stops)."""
    async with engine.begin() as conn:
        result = await conn.execute(usage_reports.update().where(
            usage_reports.c.id == report.id, usage_reports.c.attempts == report.attempts,
            usage_reports.c.state == RUNNING).values(
            premises_done=premises_done, rows_written=rows_written, next_attempt_at=lease_until))
    return bool(result.rowcount)


async def finish_report(engine: AsyncEngine, report: UsageReport, *, premises_done: int, rows_written: int,
                        file_name: str, file_bytes: int, now: datetime, expires_at: datetime) -> bool:
    """Done, with its file; the party's `usage_report.completed` event in the same transaction.
    False: the claim is not this one's any more (the file is not the report's)."""
    async with engine.begin() as conn:
        ok = await row_claims.finish(conn, usage_reports, report.id, report.attempts, state=DONE,
                                     premises_done=premises_done, rows_written=rows_written,
                                     file_name=file_name, file_bytes=file_bytes, finished_at=now,
                                     expires_at=expires_at, next_attempt_at=None)
        if ok:
            await record_events(conn, [NewEvent(report.party_id, "usage_report.completed",
                                                f"usage_report:{report.id}", {
                "report_id": report.id, "state": DONE, "format": report.format, "interval": report.interval,
                "premises": premises_done, "rows": rows_written, "bytes": file_bytes,
                "expires_at": expires_at.isoformat(), "at": now.isoformat()}, now)])
    return ok


async def fail_report(engine: AsyncEngine, report: UsageReport, error: str, now: datetime) -> bool:
    async with engine.begin() as conn:
        return await row_claims.finish(conn, usage_reports, report.id, report.attempts, state=FAILED,
                                       error=error[:500], finished_at=now, next_attempt_at=None)


async def release_report(engine: AsyncEngine, report: UsageReport, now: datetime) -> int:
    """A graceful stop hands the report back: due again now (another worker restarts it)."""
    async with engine.begin() as conn:
        return await row_claims.release(conn, usage_reports, {report.id: report.attempts}, now,
                                        usage_reports.c.state == RUNNING)


async def expired_reports(engine: AsyncEngine, now: datetime, limit: int = 100) -> list[UsageReport]:
    """Done reports whose retention is over (their files are to be deleted)."""
    query = sa.select(*_STATUS_COLUMNS).where(usage_reports.c.state == DONE, usage_reports.c.expires_at <= now
                                              ).order_by(usage_reports.c.expires_at).limit(limit)
    async with engine.connect() as conn:
        return [_report(r) for r in (await conn.execute(query)).all()]


async def mark_expired(engine: AsyncEngine, report_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(usage_reports.update().where(
            usage_reports.c.id == report_id, usage_reports.c.state == DONE).values(state=EXPIRED))


# -- the rows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PremiseSpan:
    """One premise's part of a report: its reads starting in [start, end) (end <= start: none)."""

    esi_id: str
    start: datetime
    end: datetime


CSV_HEADER = "esi_id,start_local,end_local,start_utc,channel,value,unit,quality,intervals,expected_intervals\n"

# The server formats each row as the usage endpoint's CSV does (datetime.isoformat in America/Chicago
# and in UTC; an empty value for a missing read). The three text forms of a 15-minute interval's
# times are made once per interval of the period (`t`, a hash joined on the start) instead of once per
# row: `to_char` on every row took ~45 % of the COPY (measured: 1.44 M rows, 2.7 s -> 2.1 s). A read
# off the 15-minute grid (or of another length) falls back to the timestamptz text output, which in
# the session zone America/Chicago is `YYYY-MM-DD HH:MM:SS-05` (whole-hour offsets: `:00` appended).
_PG_TIMES = (
    "SELECT ts, to_char(ts, 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM') AS sl, "
    "to_char(ts + interval '15 minutes', 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM') AS el, "
    "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00' AS su "
    "FROM generate_series($4::timestamptz, $5::timestamptz - interval '15 minutes', interval '15 minutes') ts"
)
# One text column, the whole CSV line, COPY'd in text format: the server's per-field CSV output was
# ~10 % of the COPY (measured, 1.43 M rows). Text format escapes only backslash, tab and newline,
# which no field holds (digits, ISO times, the channel and quality enums, numbers).
_PG_ROW = (
    "SELECT r.esi_id || ',' || coalesce(t.sl, replace(r.interval_start::text, ' ', 'T') || ':00') || ',' || "
    "CASE WHEN t.el IS NOT NULL AND r.length_s = 900 THEN t.el ELSE "
    "replace((r.interval_start + make_interval(secs => r.length_s))::text, ' ', 'T') || ':00' END || ',' || "
    "coalesce(t.su, replace((r.interval_start AT TIME ZONE 'UTC')::text, ' ', 'T') || '+00:00') || ',' || "
    "r.channel || ',' || CASE WHEN r.quality = 'missing' THEN '' ELSE r.value_wh::text END || ',Wh,' || "
    "r.quality || ',1,1' AS line "
    "FROM usage_reads r LEFT JOIN t ON t.ts = r.interval_start "
    "WHERE r.esi_id = p.esi_id AND r.interval_start >= p.start_at "
    "AND r.interval_start < p.end_at ORDER BY r.channel, r.interval_start"
)

# One COPY for a chunk of premises: each premise's rows by the primary key's index (a nested loop
# over the premises in their given, esi_id, order — `WITH ORDINALITY`, ordered by it: no sort of
# the chunk, only of each premise's few thousand rows after the join).
_PG_COPY = ("WITH t AS MATERIALIZED (" + _PG_TIMES + ") "
            "SELECT q.* FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY "
            "AS p(esi_id, start_at, end_at, ord) CROSS JOIN LATERAL (" + _PG_ROW + ") q ORDER BY p.ord")


async def copy_csv_postgresql(engine: AsyncEngine, spans: Sequence[PremiseSpan], out_path: Path) -> int:
    """Append the spans' 15-minute rows as CSV (no header) to the file `out_path` (made if absent)
    with one COPY; rows written."""
    with out_path.open("ab") as out:
        if not spans:
            return 0

        async def write(chunk: bytes) -> None:
            out.write(chunk)

        low, high = min(s.start for s in spans), max(s.end for s in spans)
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            apg: Any = raw.driver_connection
            async with apg.transaction():
                await apg.execute(f"SET LOCAL TIME ZONE '{TIME_ZONE}'")
                status = await apg.copy_from_query(_PG_COPY, [s.esi_id for s in spans], [s.start for s in spans],
                                                   [s.end for s in spans], low, high, output=write, format="text")
    return int(status.split()[-1])  # "COPY <rows>"


# Green Button IntervalBlocks rendered by PostgreSQL: per premise, channel and local day, the
# IntervalReading elements (the same bytes as gateway/greenbutton/writer.py's _READING and
# _READING_ESTIMATED: tests/gateway/test_usage_reports_store.py compares the two paths), the epoch
# second the newest of them was stored, and the day's row count (missing ones too). A missing
# interval has no element; a day with none but missing ones has NULL readings.
_PG_XML = ("'<IntervalReading>' || CASE r.quality WHEN 'estimated' THEN "
           "'<ReadingQuality><quality>8</quality></ReadingQuality>' ELSE '' END || "
           "'<timePeriod><duration>' || r.length_s || '</duration><start>' || "
           "floor(extract(epoch FROM r.interval_start))::bigint || '</start></timePeriod><value>' || r.value_wh "
           "|| '</value></IntervalReading>'")
# Premise by premise (a nested loop over the chunk's premises, each one's rows by the primary key's
# index and grouped in memory): one GROUP BY over the whole chunk's rows, sorted together, took ~20 %
# longer (measured, 250 premises x 30 days: 1.7-2.3 s against 1.4-1.6 s). And one row a premise,
# its days joined (fields by U+001F, days by U+001E: neither is in the XML, nor escaped by COPY's
# text format), not one a day: receiving the 7,500 rows of a chunk cost the gateway 0.5 s of CPU,
# its 250 rows 0.16 s.
_PG_ESPI_BLOCKS = (
    "SELECT s.esi_id, q.days FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY "
    "AS s(esi_id, start_at, end_at, ord) CROSS JOIN LATERAL (SELECT string_agg(d.channel || chr(31) || "
    "d.day || chr(31) || coalesce(d.readings, '') || chr(31) || coalesce(d.newest::text, '') || chr(31) || "
    "d.n, chr(30) ORDER BY d.channel, d.day) AS days FROM (SELECT r.channel, "
    "(r.interval_start AT TIME ZONE '" + TIME_ZONE + "')::date AS day, "
    "string_agg(" + _PG_XML + ", '' ORDER BY r.interval_start) FILTER (WHERE r.quality <> 'missing') AS readings, "
    "floor(extract(epoch FROM max(r.received_at) FILTER (WHERE r.quality <> 'missing')))::bigint AS newest, "
    "count(*) AS n FROM usage_reads r WHERE r.esi_id = s.esi_id AND r.interval_start >= s.start_at "
    "AND r.interval_start < s.end_at GROUP BY r.channel, day) d) q ORDER BY s.ord")

RenderedBlock = tuple[str, str, str, bytes | memoryview | None, int | None]
"""(esi_id, channel, local day YYYY-MM-DD, IntervalReading elements (UTF-8) or None, newest stored
epoch or None)."""
BlockRenderer = Callable[[Sequence["PremiseSpan"], Path], Awaitable[tuple[list[RenderedBlock], int]]]
"""(spans, a scratch file's path the renderer may make and removes) -> (blocks, rows)."""


async def espi_blocks_postgresql(engine: AsyncEngine, spans: Sequence[PremiseSpan],
                                 scratch: Path) -> tuple[list[RenderedBlock], int]:
    """The spans' Green Button blocks rendered by the server, in (esi_id, channel, day) order, and
    the rows they hold. One COPY; a chunk of premises' blocks are held (a few MB), not its rows
    (`scratch` is not used)."""
    if not spans:
        return [], 0
    blocks: list[RenderedBlock] = []
    rows = 0
    tail = b""

    async def collect(chunk: bytes) -> None:
        # Parsed as it arrives (COPY's text format: tab-separated, \N for NULL; the XML holds no
        # tab, newline or backslash): the chunk's blocks are held once, not its bytes as well. A
        # day with no readings (only missing ones) has an empty field.
        nonlocal tail, rows
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            esi_text, days = line.split(b"\t")
            if days == b"\\N":  # no reads in its span
                continue
            esi_id = esi_text.decode()
            for day in days.split(b"\x1e"):
                channel, on, readings, newest, count = day.split(b"\x1f")
                blocks.append((esi_id, channel.decode(), on.decode(), readings or None,
                               int(newest) if newest else None))
                rows += int(count)

    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        apg: Any = raw.driver_connection
        async with apg.transaction():
            ordered = sorted(spans, key=lambda s: s.esi_id)
            await apg.copy_from_query(_PG_ESPI_BLOCKS, [s.esi_id for s in ordered], [s.start for s in ordered],
                                      [s.end for s in ordered], output=collect, format="text")
    assert not tail, "COPY ended inside a line"
    return blocks, rows


@dataclass(frozen=True)
class EspiFastPath:
    """The store's Green Button block renderer: `render(spans, scratch)` -> (blocks, rows); `ahead`:
    how many chunks to render while the writer writes the current one."""

    render: BlockRenderer
    ahead: int


def espi_fast_path(engine: AsyncEngine) -> EspiFastPath | None:
    """The store's Green Button block renderer (PostgreSQL, a SQLite file), else None (an in-memory
    SQLite: the rows go through the writer in Python)."""
    if engine.dialect.name == "postgresql":
        # Two chunks ahead on two server backends: the server's work is most of the export.
        return EspiFastPath(functools.partial(espi_blocks_postgresql, engine), 2)
    if sqlite_path(engine) is not None and sqlite_reports.supported():
        # As many as the pool has worker processes.
        return EspiFastPath(functools.partial(espi_blocks_sqlite, engine), sqlite_reports.WORKERS)
    return None


@dataclass(frozen=True)
class CsvFastPath:
    """The store's CSV writer of 15-minute rows: `copy(spans, path)` appends a chunk's lines to the
    file (made if absent) and returns the rows written; `parallel`: how many chunks to run at once
    (two server backends on PostgreSQL, two worker processes on SQLite)."""

    copy: Callable[[Sequence[PremiseSpan], Path], Awaitable[int]]
    parallel: int


def csv_fast_path(engine: AsyncEngine) -> CsvFastPath | None:
    """The fast path for this store (None: an in-memory SQLite, the generic path then)."""
    if engine.dialect.name == "postgresql":
        return CsvFastPath(functools.partial(copy_csv_postgresql, engine), 2)
    if sqlite_path(engine) is not None:
        return CsvFastPath(functools.partial(copy_csv_sqlite, engine), sqlite_reports.WORKERS)
    return None


def renderers(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[None]:
    """Held while a report is produced: on SQLite the render processes' session (they stop when
    no report is being produced); nothing elsewhere."""
    if sqlite_path(engine) is not None:
        return sqlite_reports.session()
    return contextlib.nullcontext()


def sqlite_path(engine: AsyncEngine) -> str | None:
    """The SQLite file behind `engine` (None: in memory, or not SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return database if database and database != ":memory:" else None


def _stored(engine: AsyncEngine) -> Callable[[datetime], Any]:
    """A time in the text form the store keeps it in (the dialect's own bind processing)."""
    dialect = engine.dialect
    bind = usage_reads.c.interval_start.type.dialect_impl(dialect).bind_processor(dialect)
    if bind is None:
        return lambda moment: moment
    return bind


async def copy_csv_sqlite(engine: AsyncEngine, spans: Sequence[PremiseSpan], out_path: Path) -> int:
    """Append the spans' 15-minute rows as CSV (no header) to the file `out_path` (made if absent),
    made by SQLite in a worker process (gateway/store/sqlite_reports.py); rows written."""
    path = sqlite_path(engine)
    if path is None:
        raise ValueError("the SQLite fast path needs a database file")
    stored = _stored(engine)
    return await sqlite_reports.run(sqlite_reports.render_csv, path,
                                    [(s.esi_id, stored(s.start), stored(s.end)) for s in spans], out_path=str(out_path))


async def espi_blocks_sqlite(engine: AsyncEngine, spans: Sequence[PremiseSpan],
                             scratch: Path) -> tuple[list[RenderedBlock], int]:
    """The spans' Green Button blocks rendered by SQLite in a worker process, in (esi_id, channel,
    day) order, and the rows they hold (missing ones too). The process writes the elements into
    the new file `scratch`, read back here and removed."""
    path = sqlite_path(engine)
    if path is None:
        raise ValueError("the SQLite fast path needs a database file")
    stored = _stored(engine)
    cut: dict[tuple[datetime, datetime], list[tuple[str, Any, Any]]] = {}  # most spans are the report's period

    def days_of(span: PremiseSpan) -> list[tuple[str, Any, Any]]:
        key = (span.start, span.end)
        if key not in cut:
            cut[key] = [(day.isoformat(), stored(low), stored(high)) for day, low, high in _local_days(span)]
        return cut[key]

    days = [(span.esi_id, days_of(span)) for span in sorted(spans, key=lambda s: s.esi_id)]
    try:
        index, rows = await sqlite_reports.run(sqlite_reports.render_blocks, path, days, out_path=str(scratch))
        text = await asyncio.to_thread(scratch.read_bytes)
    finally:
        await asyncio.to_thread(scratch.unlink, missing_ok=True)  # ~90 MB: the file system takes a while
    # Views into the chunk's one text, not copies of it (a chunk of 250 premises' month is ~90 MB).
    view = memoryview(text)
    blocks: list[RenderedBlock] = []
    at = 0
    for esi_id, channel, day, length, newest in index:
        if length < 0:
            blocks.append((esi_id, channel, day, None, newest))
        else:
            blocks.append((esi_id, channel, day, view[at:at + length], newest))
            at += length
    return blocks, rows


def _local_days(span: PremiseSpan) -> list[tuple[date, datetime, datetime]]:
    """The local (America/Chicago) days the span touches, each with its part of the span."""
    parts: list[tuple[date, datetime, datetime]] = []
    day = span.start.astimezone(_ZONE).date()
    while True:
        low = max(span.start, datetime.combine(day, time(), _ZONE).astimezone(UTC))
        high = min(span.end, datetime.combine(day + timedelta(days=1), time(), _ZONE).astimezone(UTC))
        if low >= span.end:
            return parts
        parts.append((day, low, high))
        day += timedelta(days=1)


async def stream_reads(engine: AsyncEngine, spans: Sequence[PremiseSpan]) -> AsyncIterator[list[StoredRead]]:
    """The spans' reads in (esi_id, channel, interval start) order, in keyset pages (the generic
    path, for a format that takes rows): at most KEYSET_PAGE rows held at a time."""
    c = usage_reads.c
    for span in spans:
        after: tuple[str, datetime] | None = None
        while span.start < span.end:
            query = sa.select(*c).where(c.esi_id == span.esi_id, c.interval_start >= span.start,
                                        c.interval_start < span.end)
            if after is not None:
                query = query.where(sa.tuple_(c.channel, c.interval_start) > sa.tuple_(*after))
            query = query.order_by(c.channel, c.interval_start).limit(KEYSET_PAGE)
            async with engine.connect() as conn:
                page = [StoredRead(*row) for row in (await conn.execute(query)).all()]
            if page:
                yield page
            if len(page) < KEYSET_PAGE:
                break
            after = (page[-1].channel, page[-1].interval_start)
