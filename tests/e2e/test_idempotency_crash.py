"""kill -9 between a keyed request's commit and its answer: the client's retry with the same
Idempotency-Key gets the stored answer, and the text is shown once at the meter.

Half the cycles kill the gateway as soon as the request's row is committed (read from the database
file by the test), the client never reading the answer; the other half kill it at once, before or
during the commit. Either way the retry after the restart must act at most once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from sandbox.simfield import premises, premises_csv
from tests.e2e.test_crash import _port, _serve, _stop, _wait_http, accept_by_mail

CUSTOMER = "idem@example.test"


def _committed(db: Path, text: str) -> tuple[int, int] | None:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT id, se_id FROM han_requests WHERE body LIKE ?", (f'%"{text}"%',)).fetchone()
    return (int(row[0]), int(row[1])) if row else None


async def test_kill_9_between_commit_and_answer_replays_the_answer(tmp_path: Path) -> None:
    field_port, gw_port = _port(), _port()
    data = tmp_path / "data"
    data.mkdir()
    base = f"http://127.0.0.1:{gw_port}"
    cfg = tmp_path / "hangw.toml"
    cfg.write_text(f"""data_dir = "{data}"
[server]
port = {gw_port}
public_url = "{base}"
[routes]
kind = "simulated_remote"
url = "http://127.0.0.1:{field_port}"
[pipeline]
poll_interval_seconds = 0.05
[log]
level = "WARNING"
""")
    db = data / "hangw.db"
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="t", now=SystemClock().now())
    await store.close()
    log = (tmp_path / "serve.log").open("ab")
    field = subprocess.Popen([sys.executable, "-m", "gateway", "sim-field", "--port", str(field_port),
                              "--per-tdsp", "1"], stdout=log, stderr=subprocess.STDOUT)
    gw = _serve(cfg, log)
    items = premises(1)
    esi = items[0].esi_id
    outcomes: list[tuple[int, int, bool]] = []  # (request id, se id, committed before the kill)
    try:
        await _wait_http(f"http://127.0.0.1:{field_port}/counts")
        await _wait_http(f"{base}/healthz")
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            op = {"Authorization": f"Bearer {op_token}"}
            r = await http.post("/v1/premises/import", content=premises_csv(items, CUSTOMER),
                                headers={**op, "Content-Type": "text/csv"})
            assert r.status_code == 200, r.text
            party = (await http.post("/v1/parties", headers=op, json={
                "name": "K", "duns": "111111111", "contact_email": "k@k.test"})).json()["id"]
            token = (await http.post(f"/v1/parties/{party}/credentials", headers=op, json={})).json()["token"]
            me = {"Authorization": f"Bearer {token}"}
            r = await http.post("/v1/agreements", headers=me, json={
                "kind": "in_home_device_services", "scopes": ["text"],
                "premises": [{"esi_id": p.esi_id, "meter_number": p.meter_number} for p in items],
                "customer_email": CUSTOMER, "duration_months": 12})
            assert r.status_code == 201, r.text
            await accept_by_mail(http, data, base)

            for cycle in range(6):
                text = f"idem {cycle}"
                keyed = {**me, "Idempotency-Key": f"text-{cycle}"}
                body = {"kind": "text", "esi_ids": [esi], "text": text}
                first = asyncio.create_task(http.post("/v1/han-requests", headers=keyed, json=body))
                if cycle % 2 == 0:  # the answer is lost after the commit
                    deadline = time.monotonic() + 10
                    while _committed(db, text) is None:
                        assert time.monotonic() < deadline, "the request was never committed"
                        await asyncio.sleep(0.002)
                else:  # killed at once: before, during or just after the commit
                    await asyncio.sleep(0.001 * cycle)
                os.kill(gw.pid, signal.SIGKILL)
                gw.wait()
                with contextlib.suppress(httpx.HTTPError):
                    await first  # whatever reached the client, it is treated as lost
                before = _committed(db, text)
                gw = _serve(cfg, log)
                await _wait_http(f"{base}/healthz")
                for attempt in range(2):  # the client's retry, then one more
                    r = await http.post("/v1/han-requests", headers=keyed, json=body)
                    assert r.status_code == 202, r.text
                    if before is not None or attempt == 1:
                        assert r.headers.get("idempotent-replayed") == "true", (cycle, attempt, before)
                    if before is not None:
                        assert (r.json()["id"], r.json()["se_id"]) == before
                outcomes.append((r.json()["id"], r.json()["se_id"], before is not None))

            async def settled() -> bool:
                for rid, _se, _b in outcomes:
                    s = (await http.get(f"/v1/han-requests/{rid}", headers=me)).json()
                    if set(s["premises_by_state"]) - {"delivered"}:
                        return False
                return True

            deadline = time.monotonic() + 60
            while not await settled():
                assert time.monotonic() < deadline, "deliveries did not settle"
                await asyncio.sleep(0.3)
            counts = httpx.get(f"http://127.0.0.1:{field_port}/counts").json()
    finally:
        for proc in (gw, field):
            _stop(proc)
        log.close()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        per_text = dict(conn.execute("SELECT body, count(*) FROM han_requests GROUP BY body").fetchall())
    print(f"cycles: {len(outcomes)}, committed before the kill: {sum(b for *_, b in outcomes)}")
    assert sum(b for *_, b in outcomes) >= 3  # the commit-then-kill cycles did hit the window
    assert all(n == 1 for n in per_text.values()), per_text
    for _rid, se_id, _b in outcomes:
        assert counts.get(f"{esi}|display_message|{se_id}") == 1, (se_id, counts)
    assert max(counts.values()) == 1
