"""The HAN request pipeline under load.

(a) Single-premise text requests through the REST API of a real `hangw serve` (its own process,
    simulated field in process) to the simulated meters: accepted/s, delivered/s, p50/p99 latency,
    beside a no-op endpoint of the same web stack (`GET /healthz`: same app, middleware and server)
    measured in the same run with the same client and concurrency.
(b) One price request fanned out to N premises (100,000 by default; `--premises 1000000`): seconds
    from acceptance until every premise is handed to its route, and the peak RSS of the process
    doing it (a separate process; the route only counts what it is handed). Also printed: the CPU
    of the gateway process and (PostgreSQL) of the database backends serving it, which follow the
    work more than the wall time does on a shared machine. On PostgreSQL a page costs two
    statements (its walk and its claimed rows' INSERT in one, the `submitted` UPDATE of the batch
    when the route took it): where each one's time goes, before and after issue 14, is in
    docs/state-scale.md ("Where a fan-out's time goes"); issue 14's bar is 1,000,000 premises in
    60 s on the 2-core machine (measured 56.0 and 58.9 s at load 2-6, 378 s when other jobs
    saturate it; SQLite 36.8 s before this work).

    python -m benchmarks.pipeline [--requests 2000] [--concurrency 16] [--premises 100000]
                                  [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
                                  [--skip-fanout | --fanout-only]

`--db` runs both parts on PostgreSQL: a throwaway database is created on that server (and dropped);
the default is SQLite in a temporary data directory, as `hangw serve` uses out of the box.
(HANGW_BENCH_FANOUT_PAGE sets the fan-out page and dispatcher pass, 5000 by default.)

Last lines: `pipeline ratio vs no-op endpoint: X` and `fanout: premises=N seconds=S rss_mb=R`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mailbox
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.ports import free_port

CUSTOMER = "bench@example.test"
# Fan-out page and dispatcher pass (the [pipeline] fanout_page and batch_size the benchmark runs with).
PAGE = int(os.environ.get("HANGW_BENCH_FANOUT_PAGE", "5000"))




# ------------------------------------------------------------------------------------ (a) API


async def _load(client: Any,  # noqa: PLR0917
                method: str, url: str, bodies: Sequence[Any], concurrency: int,
                headers: dict[str, str]) -> tuple[float, list[float], list[Any]]:
    latencies: list[float] = []
    answers: list[Any] = []
    queue = list(bodies)

    async def worker() -> None:
        while queue:
            body = queue.pop()
            t0 = time.perf_counter()
            r = await client.request(method, url, json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            answers.append(r)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies, answers


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


@contextlib.asynccontextmanager
async def _database(tmp: Path, server_url: str | None) -> AsyncIterator[tuple[str, Any]]:
    """(store URL, async function counting delivered rows): SQLite in `tmp`, or a fresh
    PostgreSQL database on `server_url`'s server."""
    if server_url is None:
        path = tmp / "data" / "hangw.db"

        async def count_sqlite() -> int:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                (n,) = db.execute("SELECT count(*) FROM han_deliveries WHERE state = 'delivered'").fetchone()
            finally:
                db.close()
            return int(n)

        yield f"sqlite+aiosqlite:///{path}", count_sqlite
        return
    import asyncpg

    from sandbox.testbed import throwaway_database

    async with throwaway_database("hangw_bench", server_url) as url:
        reader = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))

        async def count_pg() -> int:
            return int(await reader.fetchval("SELECT count(*) FROM han_deliveries WHERE state = 'delivered'"))

        try:
            yield url, count_pg
        finally:
            await reader.close()


async def api_benchmark(requests: int, concurrency: int, db: str | None = None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with _database(Path(tmp), db) as (db_url, delivered_count):
            return await _api_run(Path(tmp), db_url, delivered_count, requests, concurrency)


async def _api_run(tmp: Path, db_url: str, delivered_count: Any,
                   requests: int, concurrency: int) -> float:
    import httpx

    from gateway.clock import SystemClock
    from gateway.domain.model import Role
    from gateway.store.store import open_store
    from sandbox.simfield import premises, premises_csv

    data = Path(tmp) / "data"
    data.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = Path(tmp) / "hangw.toml"
    cfg.write_text(f"""data_dir = "{data}"
[storage]
url = "{db_url}"
[server]
port = {port}
public_url = "{base}"
[routes]
kind = "simulated"
simulated_premises_per_tdsp = 8
[rate_limit]
requests_per_second = 100000.0
burst = 100000
[log]
level = "WARNING"
""")
    store = await open_store(db_url)
    _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="b", now=SystemClock().now())
    await store.close()
    log = (Path(tmp) / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(cfg)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60,
                                     limits=httpx.Limits(max_connections=concurrency)) as http:
            from sandbox.testbed import wait_http

            await wait_http(f"{base}/healthz", 30, proc=server)
            items = premises(8)
            op = {"Authorization": f"Bearer {op_token}"}
            (await http.post("/v1/premises/import", content=premises_csv(items, CUSTOMER),
                             headers={**op, "Content-Type": "text/csv"})).raise_for_status()
            party = (await http.post("/v1/parties", headers=op, json={
                "name": "Bench", "duns": "222222222", "contact_email": "b@b.test"})).json()["id"]
            token = (await http.post(f"/v1/parties/{party}/credentials", headers=op,
                                     json={"label": "b"})).json()["token"]
            me = {"Authorization": f"Bearer {token}"}
            (await http.post("/v1/agreements", headers=me, json={
                "kind": "in_home_device_services", "scopes": ["text", "price", "load_control"],
                "premises": [{"esi_id": p.esi_id, "meter_number": p.meter_number} for p in items],
                "customer_email": CUSTOMER, "duration_months": 12})).raise_for_status()
            box = mailbox.mbox(data / "mail" / "outbox.mbox")
            payload = next(iter(box)).get_payload(decode=True)
            box.close()
            assert isinstance(payload, bytes)
            link = re.search(re.escape(base) + r"/consent/[A-Za-z0-9_\-]+", payload.decode())
            assert link
            await http.get(link.group(0))
            (await http.post(link.group(0), data={"decision": "accept"})).raise_for_status()
            await asyncio.sleep(2)  # the field's devices join

            # warm-up, then the no-op endpoint
            await _load(http, "GET", "/healthz", [None] * 200, concurrency, {})
            cpu0 = _cpu_seconds(server.pid)
            noop_s, noop_lat, _ = await _load(http, "GET", "/healthz", [None] * requests, concurrency, {})
            cpu1 = _cpu_seconds(server.pid)
            rng = random.Random(1)
            bodies = [{"kind": "text", "esi_ids": [rng.choice(items).esi_id], "text": f"bench {i}",
                       "duration_minutes": 60} for i in range(requests)]
            t0 = time.perf_counter()
            pipe_s, pipe_lat, answers = await _load(http, "POST", "/v1/han-requests", bodies,
                                                    concurrency, me)
            ok = sum(1 for r in answers if r.status_code == 202)
            while True:
                done = await delivered_count()
                if done >= ok or time.perf_counter() - t0 > 300:
                    break
                await asyncio.sleep(0.05)
            delivered_s = time.perf_counter() - t0
            cpu2 = _cpu_seconds(server.pid)
    except Exception:
        print((Path(tmp) / "serve.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    noop_rate = requests / noop_s
    accepted_rate = ok / pipe_s
    print(f"no-op endpoint (GET /healthz): {noop_rate:,.0f} req/s, p50 {_pct(noop_lat, 0.5):.1f} ms, "
          f"p99 {_pct(noop_lat, 0.99):.1f} ms")
    print(f"text requests (POST /v1/han-requests): {ok}/{requests} accepted, {accepted_rate:,.0f} accepted/s, "
          f"p50 {_pct(pipe_lat, 0.5):.1f} ms, p99 {_pct(pipe_lat, 0.99):.1f} ms")
    print(f"delivered to the simulated meters: {done}/{ok}, {done / delivered_s:,.0f} delivered/s "
          f"(all delivered {delivered_s:.1f} s after the first request)")
    if cpu0 is not None and cpu1 is not None and cpu2 is not None:
        # Less sensitive to a shared machine than the rates: what each request cost the server.
        print(f"server CPU per request: no-op {(cpu1 - cpu0) / requests * 1000:.2f} ms, text accepted and "
              f"delivered {(cpu2 - cpu1) / max(ok, 1) * 1000:.2f} ms "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return accepted_rate / noop_rate


# ------------------------------------------------------------------------------------ (b) fan-out


class CountingRoute:
    """A route that takes everything and counts it: what 'handed to its route' measures."""

    def __init__(self) -> None:
        from ams_adapters.contract import RouteCapabilities

        self._caps = RouteCapabilities(name="counting", batch_size=2000, rate_limit_per_s=1e9,
                                       max_in_flight=10**9)
        self.handed = 0
        self.other_at: float | None = None

    @property
    def capabilities(self) -> Any:
        return self._caps

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def meter_capabilities(self, esi_id: str) -> Any:
        from ams_adapters.contract import MeterCapabilities

        return MeterCapabilities()

    async def provision(self, request: Any) -> Any:
        raise NotImplementedError("the counting route provisions nothing")

    async def submit(self, batch: Sequence[Any]) -> list[Any]:
        from ams_adapters.contract import SubmitOutcome, SubmitResult

        # The fan-out's prices are counted; another party's text is timed (fair scheduling).
        prices = sum(1 for op in batch if op.command == "publish_price")
        self.handed += prices
        if prices < len(batch) and self.other_at is None:
            self.other_at = time.perf_counter()
        return [SubmitResult(op.outbound_id, SubmitOutcome.ACCEPTED) for op in batch]

    async def events(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None  # pragma: no cover  (never reached: a route without events)


@contextlib.asynccontextmanager
async def _fanout_database(db: str | None) -> AsyncIterator[str]:
    """A throwaway database: a SQLite file, or (`--db postgresql+asyncpg://user@host:port/`) a
    PostgreSQL database created for the run and dropped after it."""
    if not db:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'f.db'}"
        return
    from sandbox.testbed import throwaway_database

    async with throwaway_database("hangw_bench", db) as url:
        yield url


async def _backend_cpu(store: Any) -> dict[int, float]:
    """PostgreSQL on this machine: CPU seconds so far of each backend serving the store's database
    (pid -> seconds; the pool keeps its connections), the server's share of the work and less
    dependent on the machine's load than the wall time. Empty on SQLite."""
    import sqlalchemy as sa

    if store.engine.dialect.name != "postgresql":
        return {}
    async with store.engine.connect() as conn:
        pids = (await conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))).scalars().all()
    return {pid: cpu for pid in pids if (cpu := _cpu_seconds(pid)) is not None}


async def fanout_worker(n: int, db: str | None = None) -> None:
    import sqlalchemy as sa

    from gateway.clock import SystemClock
    from gateway.config import parse_config
    from gateway.domain.model import Role
    from gateway.domain.records import Principal
    from gateway.gc_startup import freeze_startup_objects
    from gateway.pipeline.dispatcher import Dispatcher, RouteSet
    from gateway.pipeline.requests import PriceRequest, TextRequest
    from gateway.pipeline.service import RequestService
    from gateway.store.schema import agreement_premises, agreements, parties, premises
    from gateway.store.store import open_store

    async with _fanout_database(db) as url:
        store = await open_store(url)
        now = datetime.now(UTC)
        t_setup = time.perf_counter()
        async with store.engine.begin() as conn:
            await conn.execute(parties.insert().values(id=1, name="Fan", duns="333333333",
                                                       contact_email="f@f.test", status="active", created_at=now))
            await conn.execute(agreements.insert().values(
                id=1, party_id=1, kind="in_home_device_services", scopes="text,price,load_control",
                customer_email="c@c.test", duration_months=12, state="active", created_at=now, updated_at=now,
                invitation_expires_at=now, resend_count=0, accepted_at=now, starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(days=300), reminders_sent=0))
            # Another party, one premise: its single text is sent half-way through the fan-out.
            await conn.execute(parties.insert().values(id=2, name="Other", duns="444444444",
                                                       contact_email="o@o.test", status="active", created_at=now))
            await conn.execute(agreements.insert().values(
                id=2, party_id=2, kind="in_home_device_services", scopes="text", customer_email="c@c.test",
                duration_months=12, state="active", created_at=now, updated_at=now, invitation_expires_at=now,
                resend_count=0, accepted_at=now, starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(days=300), reminders_sent=0))
        chunk = 20_000
        for start in range(0, n, chunk):
            ids = [f"1044372{i:010d}" for i in range(start, min(n, start + chunk))]
            async with store.engine.begin() as conn:
                await conn.execute(premises.insert(), [{
                    "esi_id": e, "tdsp": "oncor", "meter_number": f"M{e[-10:]}", "customer_email": "c@c.test",
                    "rep": None, "premise_class": "residential", "se_version": ("1.0", "1.1", "1.2")[i % 3],
                    "enhanced_meter": False, "status": "active", "created_at": now, "updated_at": now}
                    for i, e in enumerate(ids)])
                await conn.execute(agreement_premises.insert(), [
                    {"agreement_id": 1, "esi_id": e, "meter_number": f"M{e[-10:]}"} for e in ids])
                if start == 0:
                    await conn.execute(agreement_premises.insert().values(
                        agreement_id=2, esi_id=ids[-1], meter_number=f"M{ids[-1][-10:]}"))
        if store.engine.dialect.name == "postgresql":
            # A live database has planner statistics (autovacuum); a freshly loaded one not yet.
            # (Committed: statistics written inside a rolled-back transaction are rolled back.)
            async with store.engine.begin() as conn:
                await conn.execute(sa.text("ANALYZE"))
        print(f"fan-out setup: {n:,} premises under one agreement in {time.perf_counter() - t_setup:.1f} s",
              flush=True)
        config = parse_config({"pipeline": {"batch_size": PAGE, "fanout_page": PAGE,
                                             "poll_interval_seconds": 0.01}}, env={})
        route = CountingRoute()
        dispatcher = Dispatcher(store, RouteSet(route), config.pipeline, SystemClock())
        body = PriceRequest.model_validate({"kind": "price", "all_premises": True, "provider_id": 1,
                                            "price": "0.1190", "duration_minutes": 120})
        db_before = await _backend_cpu(store)
        freeze_startup_objects()  # as `hangw serve` does once it has started (gateway/gc_startup.py)
        t0 = time.perf_counter()
        cpu0, main0 = time.process_time(), time.thread_time()
        accepted = await RequestService(store, config.pipeline).submit(
            Principal(Role.THIRD_PARTY, party_id=1), body, datetime.now(UTC))
        await dispatcher.start()
        next_report = t0 + 10
        other_sent: float | None = None
        while route.handed < n and time.perf_counter() - t0 < 600:
            await asyncio.sleep(0.05)
            if other_sent is None and route.handed >= n // 2:
                other_sent = time.perf_counter()
                await RequestService(store, config.pipeline).submit(
                    Principal(Role.THIRD_PARTY, party_id=2), TextRequest(
                        kind="text", esi_ids=[f"1044372{min(n, 20_000) - 1:010d}"], text="me too"),
                    datetime.now(UTC))
                dispatcher.poke()
            if time.perf_counter() >= next_report:  # the rate along the way: does it hold up?
                next_report += 10
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"  after {time.perf_counter() - t0:.0f} s: {route.handed:,} handed, peak RSS {rss:.0f} MB",
                      flush=True)
        seconds = time.perf_counter() - t0
        cpu, cpu_main = time.process_time() - cpu0, time.thread_time() - main0
        while other_sent is not None and route.other_at is None and time.perf_counter() - t0 < 600:
            await asyncio.sleep(0.05)
        other_ms = (route.other_at - other_sent) * 1000 if other_sent and route.other_at else None
        db_after = await _backend_cpu(store)
        db_cpu = sum(c - db_before.get(pid, 0.0) for pid, c in db_after.items()) if db_after else None
        await dispatcher.close()
        async with store.engine.connect() as conn:
            submitted = (await conn.execute(sa.text(
                "SELECT count(*) FROM han_deliveries WHERE state = 'submitted' AND request_id = :r"),
                {"r": accepted.request_id})).scalar()
        await store.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"premises": n, "handed": route.handed, "submitted": submitted, "seconds": seconds,
                      "cpu_seconds": cpu, "cpu_main_thread": cpu_main, "rss_mb": rss_mb, "db_cpu_seconds": db_cpu,
                      "other_party_ms": other_ms}), flush=True)


def fanout_benchmark(n: int, db: str | None = None) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.pipeline", "--fanout-worker", str(n),
                           *(["--db", db] if db else [])], capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    result = json.loads(lines[-1])
    print(f"fan-out: {result['handed']:,} of {n:,} premises handed to the route "
          f"({result['submitted']:,} recorded submitted) in {result['seconds']:.1f} s, "
          f"{result['handed'] / result['seconds']:,.0f} premises/s, "
          f"{result['cpu_seconds']:.1f} s of CPU ({result['cpu_main_thread']:.1f} s in the event loop's thread, "
          f"the rest in the database's threads)")
    if result.get("db_cpu_seconds") is not None:
        print(f"database server: {result['db_cpu_seconds']:.1f} s of CPU in the backends serving the fan-out")
    if result["other_party_ms"] is not None:
        print(f"another party's single text, sent half-way through the fan-out: handed to its route "
              f"{result['other_party_ms']:.0f} ms later")
    return result["seconds"], result["rss_mb"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--premises", type=int, default=100_000)
    parser.add_argument("--db", help="PostgreSQL server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/"
                        "postgres (a throwaway database is made there for each part); default SQLite")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--skip-fanout", action="store_true", help="run part (a) alone")
    parts.add_argument("--fanout-only", action="store_true", help="run part (b) alone")
    parser.add_argument("--fanout-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fanout_worker:
        asyncio.run(fanout_worker(args.fanout_worker, args.db))
        return 0
    ratio = None if args.fanout_only else asyncio.run(api_benchmark(args.requests, args.concurrency, args.db))
    if args.skip_fanout:
        print(f"pipeline ratio vs no-op endpoint: {ratio:.2f}")
        return 0
    seconds, rss = fanout_benchmark(args.premises, args.db)
    if ratio is not None:
        print(f"pipeline ratio vs no-op endpoint: {ratio:.2f}")
    print(f"fanout: premises={args.premises} seconds={seconds:.1f} rss_mb={rss:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
