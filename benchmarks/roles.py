"""Latency of one text request, accepted until delivered to the simulated meter, with one `all`
instance against an `api` instance beside a `worker` instance (the worker finds the request by
polling, `[pipeline] poll_interval_seconds`, default 0.2 s), both on one PostgreSQL database and
measured in the same run: texts sent one after another, each waited for (GET until delivered).

    python -m benchmarks.roles [--texts 20] [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Last line: `roles: texts=N all_p50_ms=A split_p50_ms=B ratio=B/A`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mailbox
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from benchmarks.pipeline import _fanout_database, _pct
from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.simfield import premises, premises_csv
from sandbox.testbed import wait_http

CUSTOMER = "roles@example.test"


def _config(tmp: Path, url: str, port: int, role: str) -> Path:
    cfg = tmp / f"{role}-{port}.toml"
    cfg.write_text(f"""data_dir = "{tmp / 'data'}"
[storage]
url = "{url}"
[server]
role = "{role}"
port = {port}
public_url = "http://127.0.0.1:{port}"
[routes]
kind = "simulated"
simulated_premises_per_tdsp = 2
[log]
level = "WARNING"
""")
    return cfg


@contextlib.asynccontextmanager
async def _serving(tmp: Path, url: str, roles: list[str]) -> AsyncIterator[list[str]]:
    """`hangw serve` instances of these roles, up; their base URLs."""
    ports = [free_port() for _ in roles]
    log = (tmp / "serve.log").open("ab")
    procs = [subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(_config(tmp, url, port, role))],
                              stdout=log, stderr=subprocess.STDOUT) for port, role in zip(ports, roles, strict=True)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for base, proc in zip(bases, procs, strict=True):
            await wait_http(f"{base}/healthz", 120, proc=proc)
        await asyncio.sleep(2)  # the simulated field's devices join
        yield bases
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


async def _party(http: httpx.AsyncClient, op_token: str, data: Path, base: str) -> tuple[dict[str, str], str]:
    """A party whose customer consented at one premise; its auth header and that ESI ID."""
    items = premises(2)
    op = {"Authorization": f"Bearer {op_token}"}
    (await http.post("/v1/premises/import", content=premises_csv(items, CUSTOMER),
                     headers={**op, "Content-Type": "text/csv"})).raise_for_status()
    party = (await http.post("/v1/parties", headers=op, json={
        "name": "Roles", "duns": "333333333", "contact_email": "r@r.test"})).json()["id"]
    token = (await http.post(f"/v1/parties/{party}/credentials", headers=op, json={"label": "r"})).json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    (await http.post("/v1/agreements", headers=me, json={
        "kind": "in_home_device_services", "scopes": ["text"],
        "premises": [{"esi_id": items[0].esi_id, "meter_number": items[0].meter_number}],
        "customer_email": CUSTOMER, "duration_months": 12})).raise_for_status()
    box = mailbox.mbox(data / "mail" / "outbox.mbox")
    payload = next(iter(box)).get_payload(decode=True)
    box.close()
    assert isinstance(payload, bytes)
    link = re.search(re.escape(base) + r"/consent/[A-Za-z0-9_\-]+", payload.decode())
    assert link
    await http.get(link.group(0))
    (await http.post(link.group(0), data={"decision": "accept"})).raise_for_status()
    return me, items[0].esi_id


async def _latencies(http: httpx.AsyncClient, me: dict[str, str], esi: str, n: int, tag: str) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        r = await http.post("/v1/han-requests", headers=me, json={"kind": "text", "esi_ids": [esi],
                                                                  "text": f"{tag} {i}"})
        r.raise_for_status()
        rid = r.json()["id"]
        while (await http.get(f"/v1/han-requests/{rid}", headers=me)).json()["premises_by_state"] != {"delivered": 1}:
            assert time.perf_counter() - started < 60, (tag, i)
            await asyncio.sleep(0.01)
        out.append(time.perf_counter() - started)  # seconds; _pct reports ms
    return out


async def main(n: int, db: str) -> None:
    print(f"load: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "data").mkdir()
        async with _fanout_database(db) as url:
            store = await open_store(url)
            _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="b", now=SystemClock().now())
            await store.close()
            async with _serving(tmp, url, ["all"]) as (base,), httpx.AsyncClient(base_url=base, timeout=30) as http:
                me, esi = await _party(http, op_token, tmp / "data", base)
                together = await _latencies(http, me, esi, n, "all")
            async with (_serving(tmp, url, ["api", "worker"]) as (api, _worker),
                        httpx.AsyncClient(base_url=api, timeout=30) as http):
                split = await _latencies(http, me, esi, n, "split")
    a, b = _pct(together, 0.5), _pct(split, 0.5)
    print(f"all-in-one: p50 {a:.0f} ms, p99 {_pct(together, 0.99):.0f} ms")
    print(f"api + worker: p50 {b:.0f} ms, p99 {_pct(split, 0.99):.0f} ms")
    print(f"load: {os.getloadavg()[0]:.2f}")
    print(f"roles: texts={n} all_p50_ms={a:.0f} split_p50_ms={b:.0f} ratio={b / a:.2f}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    asyncio.run(main(args.texts, args.db))


if __name__ == "__main__":
    cli()
