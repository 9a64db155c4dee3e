"""A usage report made by a real `hangw serve` process on SQLite, seen from outside: the render
processes (gateway/store/sqlite_reports.py) start under the real entry point, the files come back
over HTTP holding every stored read (the CSV line by line, the Green Button feed parsed by
greenbutton-objects as a client would), and no render process outlives the report."""

from __future__ import annotations

import asyncio
import csv
import io
import mailbox
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from greenbutton_objects.parse import parse_feed

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from gateway.store.usage import StoredRead
from sandbox.ports import free_port
from sandbox.simfield import SimPremise, premises, premises_csv
from sandbox.testbed import wait_http
from tests.e2e.test_roles import _toml

CUSTOMER = "reports@example.test"
START = datetime(2026, 3, 7, 6, tzinfo=UTC)  # local midnight, the day before daylight time starts
DAYS = 2


def _children(pid: int) -> set[int]:
    """The live render processes of `pid` (Linux /proc): its children started by multiprocessing's
    spawn (not its resource tracker, which multiprocessing keeps for the process's life)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:  # gone meanwhile
                continue
            if b"spawn_main" in command:
                found.add(int(child))
    return found


async def _seed(data: Path, esi_ids: list[str]) -> str:
    """The database the server will open: migrated, an operator token, two days of reads each."""
    store = await open_store(f"sqlite+aiosqlite:///{data / 'hangw.db'}")
    try:
        _c, token = await store.issue_credential(role=Role.OPERATOR, label="e2e", now=SystemClock().now())
        stored_at = datetime(2026, 3, 10, tzinfo=UTC)
        await store.upsert_usage_reads([
            StoredRead(esi, "consumption", START + timedelta(minutes=15 * i), 900, 100 + n + i,
                       "estimated" if i % 41 == 5 else "missing" if i % 67 == 9 else "actual", "sim", stored_at)
            for n, esi in enumerate(esi_ids) for i in range(DAYS * 96)])
    finally:
        await store.close()
    return token


def _mailed(data: Path) -> str:
    """The bodies of the mails the server sent (its mbox), decoded."""
    path = data / "mail" / "outbox.mbox"
    if not path.exists():
        return ""
    box = mailbox.mbox(path)
    try:
        return "\n".join(payload.decode() for message in box
                         if isinstance(payload := message.get_payload(decode=True), bytes))
    finally:
        box.close()


async def _party_with_agreement(http: httpx.AsyncClient, op: dict[str, str], items: list[SimPremise],
                                data: Path, base: str) -> dict[str, str]:
    """The operator imports the premises and registers a party; the customer accepts the party's
    one-time Energy Data agreement over the seeded days by the link mailed to them. The party's
    auth header."""
    r = await http.post("/v1/premises/import", content=premises_csv(items, CUSTOMER),
                        headers={**op, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    r = await http.post("/v1/parties", headers=op, json={"name": "Watts", "duns": "123456789",
                                                         "contact_email": "api@watts.test"})
    assert r.status_code == 201, r.text
    token = (await http.post(f"/v1/parties/{r.json()['id']}/credentials", headers=op,
                             json={"label": "e2e"})).json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    r = await http.post("/v1/agreements", headers=me, json={
        "kind": "energy_data", "premises": [{"esi_id": p.esi_id, "meter_number": p.meter_number} for p in items],
        "customer_email": CUSTOMER, "duration_months": 1,
        "data": {"mode": "one_time", "interval": "15min", "from": START.isoformat(),
                 "to": (START + timedelta(days=DAYS)).isoformat()}})
    assert r.status_code == 201, r.text
    for _ in range(100):  # the mail outbox sends it in the background
        if found := re.search(re.escape(base) + r"/consent/[A-Za-z0-9_\-]+", _mailed(data)):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no invitation mailed")
    await http.get(found.group(0))
    assert (await http.post(found.group(0), data={"decision": "accept"})).status_code == 200
    return me


async def _report(http: httpx.AsyncClient, op: dict[str, str], esi_ids: list[str], fmt: str) -> dict[str, Any]:
    r = await http.post("/v1/usage-reports", headers=op, json={
        "esi_ids": esi_ids, "from": START.isoformat(), "to": (START + timedelta(days=DAYS)).isoformat(),
        "interval": "15min", "format": fmt})
    assert r.status_code == 202, r.text
    for _ in range(600):
        body: dict[str, Any] = (await http.get(f"/v1/usage-reports/{r.json()['id']}", headers=op)).json()
        if body["state"] in ("done", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"report {r.json()['id']} not done: {body}")


async def test_a_sqlite_server_makes_both_reports_in_render_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    items = premises(1)
    esi_ids = sorted(p.esi_id for p in items)
    token = await _seed(data, esi_ids)
    port = free_port()
    cfg = tmp_path / "hangw.toml"
    # Chunks of two premises (several chunks, two at a time); no ingestion timer (no route here).
    cfg.write_text(_toml(data, port) + "\n[usage]\nreport_chunk_premises = 2\ningest_interval_seconds = 0\n")
    log = (tmp_path / "serve.log").open("ab")
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(cfg)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_http(f"{base}/healthz", timeout=60)
        op = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            me = await _party_with_agreement(http, op, items, data, base)
            assert _children(server.pid) == set()  # no render process before a report

            done = await _report(http, me, esi_ids, "csv")
            assert done["state"] == "done", done
            text = (await http.get(done["file_url"], headers=me)).text
            rows = list(csv.DictReader(io.StringIO(text)))
            assert len(rows) == done["rows_written"] == len(esi_ids) * DAYS * 96
            assert [r["esi_id"] for r in rows] == sorted(r["esi_id"] for r in rows)  # premises in order
            first = rows[0]
            assert (first["start_local"], first["value"], first["quality"]) == (
                "2026-03-07T00:00:00-06:00", "100", "actual")
            assert sum(r["quality"] == "missing" and r["value"] == "" for r in rows) == len(esi_ids) * 3

            done = await _report(http, me, esi_ids, "espi")
            assert done["state"] == "done", done
            feed = (await http.get(done["file_url"], headers=me)).content
            readings = [reading for point in parse_feed(io.BytesIO(feed)) for meter in point.meterReadings
                        for reading in meter.intervalReadings]
            # Every read but the missing ones (ESPI has no "missing"), across the 23-hour day.
            assert len(readings) == len(esi_ids) * (DAYS * 96 - 3)
            # 48 hours from local midnight touch three local days (March 8 has 23 hours): a block each.
            assert feed.count(b"<IntervalBlock ") == len(esi_ids) * 3

            for _ in range(50):  # the session over, its processes are stopped
                if not _children(server.pid):
                    break
                await asyncio.sleep(0.1)
            assert _children(server.pid) == set()
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    assert b"Traceback" not in (tmp_path / "serve.log").read_bytes()
