"""Several `hangw serve` instances on one PostgreSQL database, beside one instance on SQLite.

For each configuration — SQLite with 1 instance, PostgreSQL with 1 instance, PostgreSQL with
`--instances` (3) — on a fresh database with N premises under one agreement:

(a) the single-premise text path: text requests through the REST API (spread round-robin over
    the instances) until every accepted one was handed to the route: accepted/s and delivered/s;
(b) one price fanned out to every premise (requested from the first instance; the others share
    the work as far as they can: each instance expands pages of the fan-out, one at a time, and
    sends the rows of the pages it expanded, inserted already claimed by it): seconds from the
    request until every premise was handed to the route, and the peak RSS of the instances (the
    largest).

The route is the simulated field's HTTP surface (`routes.kind = "simulated_remote"`) served by a
counting process of its own (`--counter`), outside the gateway processes: it accepts every
operation and counts each outbound id (a delivery id). Afterwards the benchmark checks that
every delivery reached the route exactly once (none missing, none handed twice) and that the
database agrees (every fan-out delivery `submitted`); a violation is printed, and the exit
status is 1.

    python -m benchmarks.scaleout [--premises 1000000] [--requests 1000] [--concurrency 16]
                                  [--instances 3] [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

On a 2-core machine three instances are not faster than one: the ratio shows what sharing the
database costs. Last lines: `scaleout: instances=3 ratio_vs_1=X` (fan-out throughput of the
instances over one instance, same PostgreSQL, same run) and
`fanout-pg: premises=N seconds=S rss_mb=R` (one instance on PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.schema import agreements, parties
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.testbed import throwaway_database, wait_http

PAGE = int(os.environ.get("HANGW_BENCH_FANOUT_PAGE", "5000"))
DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"




def _esi(i: int) -> str:
    return f"1044372{i:010d}"


# ------------------------------------------------------------------------------------ the counting route


def counter_app() -> Any:
    """The simulated field's HTTP surface, reduced to counting: every operation is accepted and
    its outbound id counted (a second hand-over of the same id is a duplicate); `by_command`
    counts distinct deliveries per command."""

    seen: dict[str, int] = {}
    by_command: dict[str, int] = {}

    async def submit(request: Request) -> JSONResponse:
        batch = await request.json()
        out = []
        for op in batch:
            key = str(op["outbound_id"])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 1:  # deliveries, not hand-overs: a duplicate is counted apart
                by_command[op["command"]] = by_command.get(op["command"], 0) + 1
            out.append({"outbound_id": op["outbound_id"], "outcome": "accepted"})
        return JSONResponse(out)

    async def events(request: Request) -> JSONResponse:
        await asyncio.sleep(min(float(request.query_params.get("wait", "0")), 5.0))
        return JSONResponse([])

    async def meter(request: Request) -> JSONResponse:
        return JSONResponse({"se_version": "1.2"})

    async def counts(request: Request) -> JSONResponse:
        doubled = {k: n for k, n in seen.items() if n > 1}
        return JSONResponse({"handed": sum(seen.values()), "distinct": len(seen), "by_command": by_command,
                             "doubled": len(doubled), "doubled_ids": sorted(doubled)[:20]})

    return Starlette(routes=[Route("/submit", submit, methods=["POST"]), Route("/events", events),
                             Route("/meters/{esi_id}", meter), Route("/counts", counts)])


def run_counter(port: int) -> None:
    uvicorn.run(counter_app(), host="127.0.0.1", port=port, log_config=None, access_log=False)


# ------------------------------------------------------------------------------------ databases


@contextlib.asynccontextmanager
async def _database(kind: str, tmp: Path, server: str) -> AsyncIterator[str]:
    """A fresh store URL: a SQLite file in `tmp`, or a PostgreSQL database made on `server`'s
    server for the run (dropped after it)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'hangw.db'}"
        return
    async with throwaway_database("hangw_scaleout", server) as url:
        yield url


async def _populate(url: str, n: int) -> str:
    """Migrate, then one party with an agreement over N premises; returns the party's token.
    Rows are loaded directly (COPY on PostgreSQL): the benchmark is about what follows."""
    now = datetime.now(UTC)
    store = await open_store(url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(parties.insert().values(id=1, name="Fan", duns="333333333",
                                                       contact_email="f@f.test", status="active", created_at=now))
            await conn.execute(agreements.insert().values(
                id=1, party_id=1, kind="in_home_device_services", scopes="text,price,load_control",
                customer_email="c@c.test", duration_months=12, state="active", created_at=now, updated_at=now,
                invitation_expires_at=now, resend_count=0, accepted_at=now, starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(days=300), reminders_sent=0))
        premise_rows = [(_esi(i), "oncor", f"M{i:010d}", "c@c.test", None, "residential", ("1.1", "1.2")[i % 2],
                         False, "active", now, now) for i in range(n)]
        link_rows = [(1, _esi(i), f"M{i:010d}") for i in range(n)]
        premise_cols = ["esi_id", "tdsp", "meter_number", "customer_email", "rep", "premise_class", "se_version",
                        "enhanced_meter", "status", "created_at", "updated_at"]
        if store.engine.dialect.name == "postgresql":
            async with store.engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                await raw.copy_records_to_table("premises", records=premise_rows, columns=premise_cols)
                await raw.copy_records_to_table("agreement_premises", records=link_rows,
                                                columns=["agreement_id", "esi_id", "meter_number"])
                await raw.execute("ANALYZE")
        else:
            path = url.split(":///", 1)[1]
            db = sqlite3.connect(path)
            try:
                with db:
                    db.executemany(f"INSERT INTO premises ({', '.join(premise_cols)}) VALUES "
                                   f"({', '.join('?' * len(premise_cols))})",
                                   [(*r[:9], r[9].replace(tzinfo=None).isoformat(" "),
                                     r[10].replace(tzinfo=None).isoformat(" ")) for r in premise_rows])
                    db.executemany("INSERT INTO agreement_premises (agreement_id, esi_id, meter_number) "
                                   "VALUES (?, ?, ?)", link_rows)
            finally:
                db.close()
        _cred, token = await store.issue_credential(role=Role.THIRD_PARTY, label="bench", now=SystemClock().now(),
                                                    party_id=1)
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM agreement_premises"))).scalar() == n
    finally:
        await store.close()
    return token


async def _submitted(url: str, request_id: int) -> int:
    store = await open_store(url, migrate_to=None)
    try:
        async with store.engine.connect() as conn:
            return int((await conn.execute(sa.text(
                "SELECT count(*) FROM han_deliveries WHERE request_id = :r AND state = 'submitted'"),
                {"r": request_id})).scalar() or 0)
    finally:
        await store.close()


# ------------------------------------------------------------------------------------ instances


@dataclass
class Instance:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def peak_rss_mb(self) -> float:
        """VmHWM of the running process (Linux), 0 when unknown."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


def _start(tmp: Path, index: int, url: str, counter: str) -> Instance:
    data = tmp / f"data{index}"
    data.mkdir(exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp / f"hangw{index}.toml"
    cfg.write_text(f"""data_dir = "{data}"
[storage]
url = "{url}"
[server]
port = {port}
public_url = "{base}"
[routes]
kind = "simulated_remote"
url = "{counter}"
[pipeline]
batch_size = {PAGE}
fanout_page = {PAGE}
poll_interval_seconds = 0.05
[rate_limit]
requests_per_second = 100000.0
burst = 100000
[log]
level = "WARNING"
""")
    log = tmp / f"serve{index}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(cfg)],
                                stdout=out, stderr=subprocess.STDOUT)
    return Instance(proc, base, log)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """POST a request with an Idempotency-Key, sent again (same key) when the connection broke
    before an answer (a loaded server closing a kept-alive connection): accepted once either way."""
    keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    for attempt in range(3):
        try:
            return await http.post(url, json=body, headers=keyed)
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------ one configuration


@dataclass
class Figures:
    label: str
    instances: int
    accepted: int
    requests: int
    accepted_per_s: float
    delivered_per_s: float
    fanout_seconds: float
    fanout_handed: int
    rss_mb: float
    lost: int
    doubled: int
    not_submitted: int

    @property
    def fanout_rate(self) -> float:
        return self.fanout_handed / self.fanout_seconds if self.fanout_seconds else 0.0


async def run_config(kind: str, instances: int, n: int, requests: int, concurrency: int,  # noqa: PLR0917
                     server: str, timeout: float) -> Figures:
    label = f"{'SQLite' if kind == 'sqlite' else 'PostgreSQL'} x{instances}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with _database(kind, tmp, server) as url:
            t_setup = time.perf_counter()
            token = await _populate(url, n)
            print(f"{label}: {n:,} premises loaded in {time.perf_counter() - t_setup:.1f} s", flush=True)
            counter_port = free_port()
            counter = f"http://127.0.0.1:{counter_port}"
            with (tmp / "counter.log").open("wb") as counter_log:
                counter_proc = subprocess.Popen([sys.executable, "-m", "benchmarks.scaleout", "--counter",
                                                 str(counter_port)], stdout=counter_log, stderr=subprocess.STDOUT)
            started: list[Instance] = []
            try:
                async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency * 2)) as http:
                    await wait_http(f"{counter}/counts", proc=counter_proc)
                    # The first instance migrates (nothing left to do) before the others start.
                    started.append(_start(tmp, 0, url, counter))
                    await wait_http(f"{started[0].base}/healthz", proc=started[0].proc)
                    started += [_start(tmp, i, url, counter) for i in range(1, instances)]
                    for inst in started[1:]:
                        await wait_http(f"{inst.base}/healthz", proc=inst.proc)
                    return await _measure(http, label, instances, started, counter, token, url, n, requests,
                                          concurrency, timeout)
            except Exception:
                print(f"--- counter.log\n{(tmp / 'counter.log').read_text()[-2000:]}", file=sys.stderr)
                for inst in started:
                    print(f"--- {inst.log.name}\n{inst.log.read_text()[-2000:]}", file=sys.stderr)
                raise
            finally:
                for inst in started:
                    _stop(inst.proc)
                _stop(counter_proc)


async def _measure(http: Any, label: str, instances: int, started: list[Instance],  # noqa: PLR0917
                   counter: str, token: str, url: str, n: int, requests: int, concurrency: int,
                   timeout: float) -> Figures:
    me = {"Authorization": f"Bearer {token}"}

    async def counts() -> dict[str, Any]:
        answer: dict[str, Any] = (await http.get(f"{counter}/counts")).json()
        return answer

    # (a) the text path, spread over the instances
    bodies = [(started[i % len(started)].base, {"kind": "text", "esi_ids": [_esi(i % min(n, 64))],
                                                 "text": f"bench {i}", "duration_minutes": 60})
              for i in range(requests)]
    queue = list(reversed(bodies))
    accepted = 0

    async def client() -> None:
        nonlocal accepted
        while queue:
            base, body = queue.pop()
            r = await _post(http, f"{base}/v1/han-requests", body, me)
            accepted += r.status_code == 202

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    accept_s = time.perf_counter() - t0
    while (await counts())["by_command"].get("display_message", 0) < accepted and time.perf_counter() - t0 < timeout:
        await asyncio.sleep(0.05)
    delivered_s = time.perf_counter() - t0
    texts = (await counts())["by_command"].get("display_message", 0)
    print(f"{label}: text path: {accepted}/{requests} accepted, {accepted / accept_s:,.0f} accepted/s, "
          f"{texts:,} handed to the route, {texts / delivered_s:,.0f} delivered/s", flush=True)

    # (b) the fan-out
    t0 = time.perf_counter()
    r = await _post(http, f"{started[0].base}/v1/han-requests", {
        "kind": "price", "all_premises": True, "provider_id": 1, "price": "0.1190", "duration_minutes": 120}, me)
    r.raise_for_status()
    request_id = int(r.json()["request_id"] if "request_id" in r.json() else r.json()["id"])
    next_report = t0 + 10
    while True:
        prices = (await counts())["by_command"].get("publish_price", 0)
        if prices >= n or time.perf_counter() - t0 > timeout:
            break
        if time.perf_counter() >= next_report:
            next_report += 10
            print(f"  {label}: after {time.perf_counter() - t0:.0f} s: {prices:,} handed", flush=True)
        await asyncio.sleep(0.1)
    seconds = time.perf_counter() - t0
    rss = max(inst.peak_rss_mb() for inst in started)
    await asyncio.sleep(0.5)  # a hand-over still in flight would show as a duplicate
    final = await counts()
    for inst in started:
        _stop(inst.proc)
    submitted = await _submitted(url, request_id)
    total = accepted + n
    lost = max(0, total - final["distinct"])
    figures = Figures(label, instances, accepted, requests, accepted / accept_s, texts / delivered_s, seconds,
                      final["by_command"].get("publish_price", 0), rss, lost, final["doubled"], n - submitted)
    print(f"{label}: fan-out: {figures.fanout_handed:,} of {n:,} premises handed in {seconds:.1f} s "
          f"({figures.fanout_rate:,.0f} premises/s), {submitted:,} recorded submitted, peak RSS {rss:.0f} MB "
          f"(largest instance)", flush=True)
    verdict = "nothing lost or doubled" if not (figures.lost or figures.doubled or figures.not_submitted) else (
        f"LOST {figures.lost}, DOUBLED {figures.doubled} (e.g. outbound ids {final['doubled_ids'][:5]}), "
        f"{figures.not_submitted} fan-out deliveries not recorded submitted")
    print(f"{label}: exactly once at the route: {final['distinct']:,} deliveries, {final['handed']:,} hand-overs: "
          f"{verdict}", flush=True)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaleout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--premises", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--db", default=DEFAULT_DB, help=f"PostgreSQL server (default {DEFAULT_DB}); a "
                        "throwaway database is made there for each configuration")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each part may take at most")
    parser.add_argument("--counter", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.counter:
        run_counter(args.counter)
        return 0
    if args.premises < 1 or args.requests < 1 or args.instances < 1:
        parser.error("--premises, --requests and --instances must be at least 1")
    runs = [run_config(kind, count, args.premises, args.requests, args.concurrency, args.db, args.timeout)
            for kind, count in (("sqlite", 1), ("postgresql", 1), ("postgresql", args.instances))]
    results = [asyncio.run(r) for r in runs]
    sqlite_one, pg_one, pg_many = results
    for f in results:
        print(f"{f.label}: text {f.delivered_per_s:,.0f} delivered/s, fan-out {f.fanout_seconds:.1f} s "
              f"({f.fanout_rate / sqlite_one.fanout_rate:.2f} x SQLite's rate), lost {f.lost}, doubled {f.doubled}")
    ok = all(not (f.lost or f.doubled or f.not_submitted) for f in results)
    if not ok:
        print("exactly-once check FAILED (see above)")
    ratio = pg_many.fanout_rate / pg_one.fanout_rate if pg_one.fanout_rate else 0.0
    print(f"scaleout: instances={args.instances} ratio_vs_1={ratio:.2f}")
    print(f"fanout-pg: premises={args.premises} seconds={pg_one.fanout_seconds:.1f} rss_mb={pg_one.rss_mb:.0f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
