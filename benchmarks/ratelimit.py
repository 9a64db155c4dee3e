"""What the shared rate-limit bucket costs a request: single-premise text requests through the REST
API of a real `hangw serve`, with the party's bucket in the database (`[rate_limit] shared = true`,
one atomic upsert per request) against the same gateway with the bucket in its own memory
(`shared = false`), on the same database in the same run. The limit is set far above the load, so
every request is accepted and what is measured is the bucket's cost, not the limit.

    python -m benchmarks.ratelimit [--requests 1000] [--concurrency 16] [--rounds 2]
                                   [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
                                   [--sqlite]

Rounds alternate in-process/shared (a restart of the gateway each time, on the same database) and
the best of each is kept. Last line: `ratelimit shared/in-process accepted/s: <store>=X ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mailbox
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.pipeline import _cpu_seconds, _database, _load, _pct
from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.simfield import premises, premises_csv
from sandbox.testbed import wait_http

CUSTOMER = "bench@example.test"


def _config(tmp: Path, db_url: str, port: int, shared: bool) -> Path:
    cfg = tmp / f"hangw-{shared}.toml"
    cfg.write_text(f"""data_dir = "{tmp / 'data'}"
[storage]
url = "{db_url}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[rate_limit]
requests_per_second = 100000.0
burst = 100000
shared = {str(shared).lower()}
[log]
level = "WARNING"
""")
    return cfg


@contextlib.asynccontextmanager
async def _serving(tmp: Path, db_url: str, shared: bool) -> Any:
    port = free_port()
    log = (tmp / "serve.log").open("ab")
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(_config(tmp, db_url, port, shared))],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                     limits=httpx.Limits(max_connections=64)) as http:
            await wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc=server)
            http.server_pid = server.pid  # type: ignore[attr-defined]
            yield http
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


async def _party(tmp: Path, http: Any, db_url: str) -> tuple[dict[str, str], list[str]]:
    """An operator, eight premises, a party with the customer's consent: its auth header, the ESI IDs."""
    store = await open_store(db_url)
    _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="b", now=SystemClock().now())
    await store.close()
    op = {"Authorization": f"Bearer {op_token}"}
    items = premises(2)
    (await http.post("/v1/premises/import", content=premises_csv(items, CUSTOMER),
                     headers={**op, "Content-Type": "text/csv"})).raise_for_status()
    party = (await http.post("/v1/parties", headers=op, json={
        "name": "Bench", "duns": "222222222", "contact_email": "b@b.test"})).json()["id"]
    token = (await http.post(f"/v1/parties/{party}/credentials", headers=op, json={"label": "b"})).json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    (await http.post("/v1/agreements", headers=me, json={
        "kind": "in_home_device_services", "scopes": ["text"],
        "premises": [{"esi_id": p.esi_id, "meter_number": p.meter_number} for p in items],
        "customer_email": CUSTOMER, "duration_months": 12})).raise_for_status()
    box = mailbox.mbox(tmp / "data" / "mail" / "outbox.mbox")
    payload = next(iter(box)).get_payload(decode=True)
    box.close()
    assert isinstance(payload, bytes)
    link = re.search(r"http://127\.0\.0\.1:\d+/consent/[A-Za-z0-9_\-]+", payload.decode())
    assert link
    await http.get(link.group(0))
    (await http.post(link.group(0), data={"decision": "accept"})).raise_for_status()
    return me, [p.esi_id for p in items]


async def measure(db: str | None, requests: int, concurrency: int,
                  rounds: int) -> tuple[dict[bool, float], dict[bool, float]]:
    """Best accepted/s and least gateway CPU ms per request of each bucket kind ({shared: …})."""
    best: dict[bool, float] = {False: 0.0, True: 0.0}
    cpu: dict[bool, float] = {False: float("inf"), True: float("inf")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with _database(tmp, db) as (db_url, _delivered):
            async with _serving(tmp, db_url, False) as http:
                me, esi_ids = await _party(tmp, http, db_url)
            rng = random.Random(1)
            for _round in range(rounds):
                for shared in (False, True):
                    async with _serving(tmp, db_url, shared) as http:
                        warm = [{"kind": "text", "esi_ids": [rng.choice(esi_ids)], "text": "warm"}] * 100
                        await _load(http, "POST", "/v1/han-requests", warm, concurrency, me)
                        bodies = [{"kind": "text", "esi_ids": [rng.choice(esi_ids)], "text": f"b {i}"}
                                  for i in range(requests)]
                        cpu0 = _cpu_seconds(http.server_pid)
                        seconds, latencies, answers = await _load(http, "POST", "/v1/han-requests", bodies,
                                                                  concurrency, me)
                        cpu1 = _cpu_seconds(http.server_pid)
                    ok = sum(1 for r in answers if r.status_code == 202)
                    assert ok == requests, {r.status_code for r in answers}
                    rate = ok / seconds
                    best[shared] = max(best[shared], rate)
                    ms = (cpu1 - cpu0) / ok * 1000 if cpu0 is not None and cpu1 is not None else float("nan")
                    cpu[shared] = min(cpu[shared], ms)
                    print(f"  {'shared' if shared else 'in-process'}: {rate:,.0f} accepted/s, p50 "
                          f"{_pct(latencies, 0.5):.1f} ms, p99 {_pct(latencies, 0.99):.1f} ms, gateway CPU "
                          f"{ms:.2f} ms/request (load {os.getloadavg()[0]:.1f})", flush=True)
    return best, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite", action="store_true", help="also measure on SQLite (the embedded default)")
    args = parser.parse_args(argv)
    ratios = {}
    stores: list[tuple[str, str | None]] = [("postgresql", args.db)] + ([("sqlite", None)] if args.sqlite else [])
    for name, db in stores:
        print(f"{name}: {args.requests} text requests, concurrency {args.concurrency}", flush=True)
        best, cpu = asyncio.run(measure(db, args.requests, args.concurrency, args.rounds))
        print(f"{name}: best in-process {best[False]:,.0f}/s, shared {best[True]:,.0f}/s; gateway CPU per "
              f"request in-process {cpu[False]:.2f} ms, shared {cpu[True]:.2f} ms")
        ratios[name] = best[True] / best[False]
    print("ratelimit shared/in-process accepted/s: " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
