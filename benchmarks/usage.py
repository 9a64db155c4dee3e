"""Usage data (issue 16): both halves of the issue's benchmark in one run.

Ingest: reads ingested per second from the simulated route into the store, through the gateway's
own ingestion (`gateway.usage.UsageService.fetch`: the route's read, then the upsert of
`usage_reads`), for `--ingest-premises` premises over `--ingest-days` days.

Export: a month (`--days`) of 15-minute data for `--premises` premises (10,000 x 30 x 96 = 28.8 M
rows) is generated in the store — by the database itself (`INSERT … SELECT` over generated series,
the primary key built after: no row crosses the client, and generation is not part of the figure)
— then, in the same run:
- the baseline: the time to merely read the same rows from the store, as rows into Python (the
  same chunks of premises and the same per-premise index order; asyncpg rows on PostgreSQL, the
  `sqlite3` module's fetchmany on SQLite) — what any exporter formatting in Python pays at least;
- the CSV export through the report job path: a usage report queued in the store, produced by
  `gateway.usage_reports.ReportWorker` (claim, chunks, checkpoints, file, finish) in a subprocess,
  timed there from the claim to the finished file; `rss_mb` is that process's peak RSS
  (`resource.getrusage`, ru_maxrss).

    python -m benchmarks.usage [--premises 10000] [--days 30] [--ingest-premises 200] [--ingest-days 7]
                               [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

SQLite in a temporary directory by default; `--db` names a PostgreSQL server, on which a fresh
database is made and dropped. ESPI export is not measured (the Green Button writer is another
branch; gateway/usage_reports.py). Last line:
`usage: ingest_per_s=X export_premises=N seconds=S rss_mb=R ratio_vs_read=Q` (S: the export's
seconds, R: the exporting process's peak RSS, Q: export time over read time of the same rows).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import sqlalchemy as sa

from gateway.clock import SystemClock
from gateway.pipeline.dispatcher import RouteSet
from gateway.store import usage_reports
from gateway.store.store import Store, open_store
from gateway.store.usage_reports import PremiseSpan, ReportPremise
from gateway.usage import UsageService
from gateway.usage_reports import ReportWorker
from sandbox.simulated_route import SimulatedRoute
from simulators.clock import VirtualClock
from simulators.field import SimField
from simulators.meter import SimMeter


@contextlib.asynccontextmanager
async def _store(tmp: Path, server_url: str | None) -> AsyncIterator[Store]:
    if server_url is None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp / 'usage.db'}")
        try:
            yield store
        finally:
            await store.close()
        return
    admin = server_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"hangw_bench_usage_{random.randrange(16**8):08x}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    store = await open_store(server_url.rsplit("/", 1)[0] + "/" + name)
    try:
        yield store
    finally:
        await store.close()
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def ingest(premises: int, days: int, store: Store) -> tuple[int, float]:
    """The ingest half: (reads stored, seconds)."""
    now = int(time.time()) // 900 * 900
    start = now - days * 86_400
    clock = VirtualClock(start=now, seed=1)
    field = SimField(clock)
    esi_ids = [f"1044372{n:010d}" for n in range(1, premises + 1)]
    for esi in esi_ids:
        field.add_meter(SimMeter(esi, clock))
    service = UsageService(store, RouteSet(SimulatedRoute(field)), SystemClock())
    t0 = time.perf_counter()
    stored = 0
    for esi in esi_ids:
        stored += await service.fetch(esi, start, now)
    return stored, time.perf_counter() - t0


def _export_esi(n: int) -> str:
    return f"1017699{n:010d}"


async def generate(store: Store, premises: int, start: datetime, days: int) -> int:
    """A month of 15-minute consumption for `premises` premises, made by the database itself."""
    intervals = days * 96
    engine = store.engine
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE usage_reads DROP CONSTRAINT pk_usage_reads"))
            await conn.execute(sa.text(
                "INSERT INTO usage_reads SELECT '1017699' || lpad(p::text, 10, '0'), 'consumption', "
                "CAST(:start AS timestamptz) + i * interval '15 minutes', 900, 100 + (p * 7 + i * 13) % 900, "
                "CASE WHEN i % 997 = 0 THEN 'estimated' WHEN i % 1499 = 0 THEN 'missing' ELSE 'actual' END, "
                "'bench', CAST(:start AS timestamptz) "
                "FROM generate_series(1, :n) p CROSS JOIN LATERAL generate_series(0, :k - 1) i"),  # p-major: no sort
                {"start": start, "n": premises, "k": intervals})
            await conn.execute(sa.text(
                "ALTER TABLE usage_reads ADD CONSTRAINT pk_usage_reads PRIMARY KEY (esi_id, channel, interval_start)"))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE usage_reads"))
    else:
        path = usage_reports.sqlite_path(engine)
        assert path is not None
        await asyncio.to_thread(_sqlite_generate, path, premises, start, intervals)
    return premises * intervals


def _sqlite_generate(path: str, premises: int, start: datetime, intervals: int) -> None:
    """executemany in big transactions (one per 200 premises), rows in primary key order."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        base = start.replace(tzinfo=None)
        stamps = [f"{base + timedelta(minutes=15 * i):%Y-%m-%d %H:%M:%S}.000000" for i in range(intervals)]
        received = stamps[0]
        for first in range(1, premises + 1, 200):
            with conn:
                for p in range(first, min(premises, first + 199) + 1):
                    esi = _export_esi(p)
                    conn.executemany(
                        "INSERT INTO usage_reads VALUES (?, 'consumption', ?, 900, ?, ?, 'bench', ?)",
                        [(esi, at, 100 + (p * 7 + i * 13) % 900,
                          "estimated" if i % 997 == 0 else "missing" if i % 1499 == 0 and i else "actual", received)
                         for i, at in enumerate(stamps)])
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def read_baseline(store: Store, spans: list[PremiseSpan], chunk: int) -> tuple[int, float]:
    """The same rows as the export, in the same chunks and order, read as rows into Python."""
    t0 = time.perf_counter()
    rows = 0
    engine = store.engine
    if engine.dialect.name == "postgresql":
        query = ("SELECT q.* FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY "
                 "AS p(esi_id, start_at, end_at, ord) CROSS JOIN LATERAL (SELECT r.esi_id, r.channel, "
                 "r.interval_start, r.length_s, r.value_wh, r.quality FROM usage_reads r WHERE r.esi_id = p.esi_id "
                 "AND r.interval_start >= p.start_at AND r.interval_start < p.end_at "
                 "ORDER BY r.channel, r.interval_start) q ORDER BY p.ord")
        async with engine.connect() as conn:
            apg = (await conn.get_raw_connection()).driver_connection
            assert apg is not None
            async with apg.transaction():
                for i in range(0, len(spans), chunk):
                    part = spans[i:i + chunk]
                    cursor = apg.cursor(query, [s.esi_id for s in part], [s.start for s in part],
                                        [s.end for s in part], prefetch=20_000)
                    async for _row in cursor:
                        rows += 1
    else:
        path = usage_reports.sqlite_path(engine)
        assert path is not None
        rows = await asyncio.to_thread(_sqlite_read, path, [(s.esi_id, s.start, s.end) for s in spans])
    return rows, time.perf_counter() - t0


def _sqlite_read(path: str, spans: list[tuple[str, datetime, datetime]]) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = 0
    try:
        for esi, start, end in spans:
            cursor = conn.execute(
                "SELECT esi_id, channel, interval_start, length_s, value_wh, quality FROM usage_reads "
                "WHERE esi_id = ? AND interval_start >= ? AND interval_start < ? ORDER BY channel, interval_start",
                (esi, f"{start.replace(tzinfo=None):%Y-%m-%d %H:%M:%S}.000000",
                 f"{end.replace(tzinfo=None):%Y-%m-%d %H:%M:%S}.000000"))
            while page := cursor.fetchmany(20_000):
                rows += len(page)
    finally:
        conn.close()
    return rows


async def _export_worker(url: str, report_id: int, data_dir: str, chunk: int) -> dict[str, float]:
    """In the subprocess: produce the queued report as a worker does; the figures as JSON."""
    store = await open_store(url)
    try:
        worker = ReportWorker(store, UsageService(store, None, SystemClock()), SystemClock(), Path(data_dir),
                              lease=timedelta(minutes=5), retention=timedelta(days=1), chunk_premises=chunk)
        t0 = time.perf_counter()
        assert await worker.run_once()
        seconds = time.perf_counter() - t0
        report = await usage_reports.get_report(store.engine, report_id)
        assert report is not None and report.state == usage_reports.DONE, report
    finally:
        await store.close()
    return {"seconds": seconds, "rows": report.rows_written, "bytes": report.file_bytes or 0,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="hangw-bench-usage-") as tmp:
        async with _store(Path(tmp), args.db) as store:
            stored, ingest_s = await ingest(args.ingest_premises, args.ingest_days, store)
            ingest_rate = stored / ingest_s

            now = datetime.now(UTC)
            end = datetime(now.year, now.month, now.day, tzinfo=UTC)
            start = end - timedelta(days=args.days)
            t0 = time.perf_counter()
            expected = await generate(store, args.premises, start, args.days)
            generate_s = time.perf_counter() - t0
            spans = [PremiseSpan(_export_esi(p), start, end) for p in range(1, args.premises + 1)]
            read, read_s = await read_baseline(store, spans, args.chunk)
            assert read == expected, (read, expected)

            clock = SystemClock()
            party = await store.create_party(name="Bench", duns="999999999", contact_email="b@example.test",
                                             now=clock.now())
            report = await usage_reports.create_report(
                store.engine, party_id=party.id, fmt="csv", interval="15min", start=start, end=end,
                premises=[ReportPremise(s.esi_id, None) for s in spans], now=clock.now())
            url = str(store.engine.url.render_as_string(hide_password=False))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.usage", "--export-worker", url, str(report.id), tmp,
                str(args.chunk), stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            assert proc.returncode == 0, out
            figures = json.loads(out.decode().strip().splitlines()[-1])
            assert figures["rows"] == expected, (figures, expected)
            backend = store.engine.dialect.name
    print(f"store={backend} ingest: premises={args.ingest_premises} days={args.ingest_days} reads={stored} "
          f"seconds={ingest_s:.2f}")
    print(f"export: premises={args.premises} days={args.days} rows={expected} generated_in={generate_s:.1f}s "
          f"read_baseline={read_s:.2f}s ({read / read_s:,.0f} rows/s) csv_export={figures['seconds']:.2f}s "
          f"({expected / figures['seconds']:,.0f} rows/s, {figures['bytes'] / 1e6:,.0f} MB) "
          f"rss={figures['rss_mb']:.0f} MB load={os.getloadavg()[0]:.2f}")
    return (f"usage: ingest_per_s={ingest_rate:.0f} export_premises={args.premises} seconds={figures['seconds']:.2f} "
            f"rss_mb={figures['rss_mb']:.0f} ratio_vs_read={figures['seconds'] / read_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--premises", type=int, default=10_000, help="premises of the export")
    parser.add_argument("--days", type=int, default=30, help="days of 15-minute data exported")
    parser.add_argument("--ingest-premises", type=int, default=200)
    parser.add_argument("--ingest-days", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=250, help="premises per chunk ([usage] report_chunk_premises)")
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--export-worker", nargs=4, metavar=("URL", "REPORT", "DIR", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_worker:  # the exporting subprocess
        url, report_id, data_dir, chunk = args.export_worker
        print(json.dumps(asyncio.run(_export_worker(url, int(report_id), data_dir, int(chunk)))))
        return
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
