"""Usage data (issue 16): both halves of the issue's benchmark in one run.

Ingest: reads ingested per second into the store through the gateway's own ingestion
(`gateway.usage.UsageService.fetch`: the route's read, then the upsert of `usage_reads`), for
`--ingest-premises` premises over `--ingest-days` days, `--ingest-concurrency` premises at once (as
a pass reads them): from a TDSP head-end emulator over its
protocol (`--headend multispeak|cim|binary`, default multispeak: the real adapter's paged interval
reads over loopback; `none` skips it; 61968-9 over a Mosquitto of its own with Nagle off, or
`--broker system` for the one at 127.0.0.1:1883), beside the simulated route (no protocol) as its
baseline.
`ingest_per_s` on the last line is the head-end's.

Export: a month (`--days`) of 15-minute data for `--premises` premises (10,000 x 30 x 96 = 28.8 M
rows) is generated in the store — by the database itself (`INSERT … SELECT` over generated series,
the primary key built after: no row crosses the client, and generation is not part of the figure)
— then, in the same run:
- the baseline: the time to merely read the same rows from the store, as rows into Python (the
  same chunks of premises and the same per-premise index order; asyncpg rows on PostgreSQL, the
  `sqlite3` module's fetchmany on SQLite) — what any exporter formatting in Python pays at least;
- the export through the report job path, for each of `--formats` (CSV, then Green Button ESPI): a
  usage report queued in the store, produced by `gateway.usage_reports.ReportWorker` (claim,
  chunks, checkpoints, file, finish) in a subprocess of its own, timed there from the claim to the
  finished file; `rss_mb` is that process's peak RSS (`resource.getrusage`, ru_maxrss) plus, on
  SQLite, its render processes' (gateway/store/sqlite_reports.py: the largest one's peak times
  their number, an upper bound of what they held at once).

    python -m benchmarks.usage [--premises 10000] [--days 30] [--ingest-premises 200] [--ingest-days 7]
                               [--formats csv,espi] [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

SQLite in a temporary directory by default; `--db` names a PostgreSQL server, on which a fresh
database is made and dropped. One line per format, then the last line:
`usage: ingest_per_s=X export_premises=N seconds=S rss_mb=R ratio_vs_read=Q` (S: the slowest
format's seconds, R: the largest peak RSS of the exporting processes, Q: S over the read time of the
same rows).
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

from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.profiles import load_profile
from gateway.clock import SystemClock
from gateway.pipeline.dispatcher import RouteSet
from gateway.store import sqlite_reports, usage_reports
from gateway.store.store import Store, open_store
from gateway.store.usage_reports import PremiseSpan, ReportPremise
from gateway.usage import UsageService
from gateway.usage_reports import ReportWorker
from sandbox.dynsec_broker import start_plain_broker
from sandbox.headends import headend_for_profile
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


HEADEND_TDSP = {"multispeak": "oncor", "cim": "centerpoint", "binary": "tnmp"}


async def _fetch_all(service: UsageService, esi_ids: list[str], start: int, end: int, concurrency: int) -> int:
    """Every premise's [start, end) through `service`, `concurrency` premises at once (as an
    ingestion pass reads them: `[usage] ingest_concurrency`)."""
    room = asyncio.Semaphore(concurrency)

    async def one(esi: str) -> int:
        async with room:
            return await service.fetch(esi, start, end)

    async with asyncio.TaskGroup() as tasks:
        fetched = [tasks.create_task(one(esi)) for esi in esi_ids]
    return sum(task.result() for task in fetched)


async def ingest(premises: int, days: int, store: Store, *, headend: str, tmp: Path,
                 server_url: str | None, concurrency: int = 8,
                 own_broker: bool = True) -> tuple[int, float, float | None]:
    """The ingest half: (reads stored, seconds from the simulated route, seconds through the
    `headend` protocol's emulator and the TDSP adapter that speaks it, into a fresh store; None
    for `none`). The same premises and period both ways: the same reads."""
    now = int(time.time()) // 900 * 900
    start = now - days * 86_400
    clock = VirtualClock(start=now, seed=1)
    field = SimField(clock)
    esi_ids = [f"1044372{n:010d}" for n in range(1, premises + 1)]
    for esi in esi_ids:
        field.add_meter(SimMeter(esi, clock))
    service = UsageService(store, RouteSet(SimulatedRoute(field)), SystemClock())
    t0 = time.perf_counter()
    stored = await _fetch_all(service, esi_ids, start, now, concurrency)
    simulated_s = time.perf_counter() - t0
    if headend == "none":
        return stored, simulated_s, None
    profile = load_profile(HEADEND_TDSP[headend])
    broker = start_plain_broker(tmp / "broker") if headend == "cim" and own_broker else None
    emulator = headend_for_profile(profile, field, clock, topic_prefix=f"bench/usage/{random.randrange(16**6):06x}",
                                   **({"mqtt_port": broker.port} if broker else {}))
    await emulator.start()
    port = getattr(emulator, "port", 1883)
    adapter = make_adapter(AdapterConfig(profile.tdsp, url=f"http://127.0.0.1:{port}", port=port,
                                         topic_prefix=getattr(emulator, "prefix", "hangw")))
    await adapter.start()
    (tmp / headend).mkdir()
    try:
        async with _store(tmp / headend, server_url) as fresh:
            through = UsageService(fresh, RouteSet(adapter), SystemClock())
            t0 = time.perf_counter()
            via = await _fetch_all(through, esi_ids, start, now, concurrency)
            headend_s = time.perf_counter() - t0
    finally:
        await adapter.close()
        await emulator.close()
        if broker is not None:
            broker.stop()
    assert via == stored, (via, stored)
    return stored, simulated_s, headend_s


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
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # The render processes have ended with the report's session: their largest peak.
            "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="hangw-bench-usage-") as tmp:
        async with _store(Path(tmp), args.db) as store:
            stored, simulated_s, headend_s = await ingest(args.ingest_premises, args.ingest_days, store,
                                                          headend=args.headend, tmp=Path(tmp), server_url=args.db,
                                                          concurrency=args.ingest_concurrency,
                                                          own_broker=args.broker == "own")
            # The figure: reads ingested per second from a head-end emulator (the simulated
            # route's rate, its baseline, beside it).
            ingest_s = headend_s if headend_s is not None else simulated_s
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
            url = str(store.engine.url.render_as_string(hide_password=False))
            figures: dict[str, dict[str, float]] = {}
            for fmt in args.formats.split(","):
                report = await usage_reports.create_report(
                    store.engine, party_id=party.id, fmt=fmt, interval="15min", start=start, end=end,
                    premises=[ReportPremise(s.esi_id, None) for s in spans], now=clock.now())
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "benchmarks.usage", "--export-worker", url, str(report.id), tmp,
                    str(args.chunk), stdout=asyncio.subprocess.PIPE)
                out, _ = await proc.communicate()
                assert proc.returncode == 0, out
                figures[fmt] = json.loads(out.decode().strip().splitlines()[-1])
                assert figures[fmt]["rows"] == expected, (fmt, figures[fmt], expected)
            backend = store.engine.dialect.name
    print(f"store={backend} ingest: premises={args.ingest_premises} days={args.ingest_days} reads={stored} "
          f"simulated={simulated_s:.2f}s ({stored / simulated_s:,.0f}/s)"
          + (f" headend={args.headend} {headend_s:.2f}s ({stored / headend_s:,.0f}/s, "
             f"ratio_vs_simulated={headend_s / simulated_s:.2f})" if headend_s is not None else ""))
    print(f"export: premises={args.premises} days={args.days} rows={expected} generated_in={generate_s:.1f}s "
          f"read_baseline={read_s:.2f}s ({read / read_s:,.0f} rows/s) load={os.getloadavg()[0]:.2f}")
    for fmt, f in figures.items():
        print(f"  {fmt}_export={f['seconds']:.2f}s ({expected / f['seconds']:,.0f} rows/s, {f['bytes'] / 1e6:,.0f} MB) "
              f"rss={f['rss_mb']:.0f} MB (render processes {f['children_rss_mb']:.0f} MB each at most) "
              f"ratio_vs_read={f['seconds'] / read_s:.2f}")
    # The last line: the slowest format's seconds (each must meet the bar) and the largest RSS.
    slowest = max(figures.values(), key=lambda f: f["seconds"])
    rss = max(f["rss_mb"] + (sqlite_reports.WORKERS * f["children_rss_mb"] if backend == "sqlite" else 0)
              for f in figures.values())
    return (f"usage: ingest_per_s={ingest_rate:.0f} export_premises={args.premises} seconds={slowest['seconds']:.2f} "
            f"rss_mb={rss:.0f} ratio_vs_read={slowest['seconds'] / read_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--premises", type=int, default=10_000, help="premises of the export")
    parser.add_argument("--days", type=int, default=30, help="days of 15-minute data exported")
    parser.add_argument("--ingest-premises", type=int, default=200)
    parser.add_argument("--ingest-days", type=int, default=7)
    parser.add_argument("--broker", choices=["own", "system"], default="own",
                        help="61968-9 (--headend cim): a Mosquitto of the benchmark's own with set_tcp_nodelay "
                             "(default), or the one at 127.0.0.1:1883 as the machine configured it")
    parser.add_argument("--ingest-concurrency", type=int, default=8,
                        help="premises read at once ([usage] ingest_concurrency; 1: one after another)")
    parser.add_argument("--chunk", type=int, default=250, help="premises per chunk ([usage] report_chunk_premises)")
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--formats", default="csv,espi", help="report formats exported, in turn (csv,espi)")
    parser.add_argument("--headend", default="multispeak", choices=[*HEADEND_TDSP, "none"],
                        help="ingest through this head-end protocol's emulator too (cim needs Mosquitto on 1883)")
    parser.add_argument("--export-worker", nargs=4, metavar=("URL", "REPORT", "DIR", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_worker:  # the exporting subprocess
        url, report_id, data_dir, chunk = args.export_worker
        print(json.dumps(asyncio.run(_export_worker(url, int(report_id), data_dir, int(chunk)))))
        return
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
