"""kill -9 between a keyed request's commit and its answer: the client's retry with the same
Idempotency-Key gets the stored answer, and the text is shown once at the meter — through the
simulated field and through the three head-end protocols (MultiSpeak, IEC 61968-9, binary).

Half the cycles kill the gateway as soon as the request's row is committed (read from the database
file by the test), the client never reading the answer; the other half kill it at once, before or
during the commit. Either way the retry after the restart must act at most once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from sandbox.ports import free_port
from sandbox.testbed import wait_http
from tests.e2e.test_crash import (
    ROUTES,
    _serve,
    _stop,
    consenting_party,
    operator_token,
    write_config,
)

CYCLES = 4


def _committed(db: Path, text: str) -> tuple[int, int] | None:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT id, se_id FROM han_requests WHERE body LIKE ?", (f'%"{text}"%',)).fetchone()
    return (int(row[0]), int(row[1])) if row else None


@pytest.mark.parametrize("route", list(ROUTES))
async def test_kill_9_between_commit_and_answer_replays_the_answer(tmp_path: Path, route: str) -> None:
    gw_port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    db = data / "hangw.db"
    base = f"http://127.0.0.1:{gw_port}"
    log = (tmp_path / "serve.log").open("ab")
    outcomes: list[tuple[str, int, int, bool]] = []  # (ESI ID, request id, SE id, committed before the kill)
    async with ROUTES[route](tmp_path, log) as meters:
        cfg = write_config(tmp_path, data, gw_port, meters)
        op_token = await operator_token(data)
        gw = _serve(cfg, log)
        try:
            await wait_http(f"{base}/healthz")
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                me = await consenting_party(http, op_token, route, meters, data=data, base=base, scopes=["text"])

                for cycle in range(CYCLES):
                    esi = meters.premises[cycle % len(meters.premises)][0]
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
                    await wait_http(f"{base}/healthz")
                    for attempt in range(2):  # the client's retry, then one more
                        r = await http.post("/v1/han-requests", headers=keyed, json=body)
                        assert r.status_code == 202, r.text
                        if before is not None or attempt == 1:
                            assert r.headers.get("idempotent-replayed") == "true", (cycle, attempt, before)
                        if before is not None:
                            assert (r.json()["id"], r.json()["se_id"]) == before
                    outcomes.append((esi, r.json()["id"], r.json()["se_id"], before is not None))

                # Every item handed to the route (a head-end's delivery notice sent while the gateway
                # was down is not sent again: `submitted` counts as handed over; test_crash.py says why).
                done = {"delivered"} if route == "simulated" else {"delivered", "submitted"}
                deadline = time.monotonic() + 60
                while True:
                    states = [(await http.get(f"/v1/han-requests/{rid}", headers=me)).json()["premises_by_state"]
                              for _e, rid, _s, _b in outcomes]
                    if all(set(s) <= done and s for s in states):
                        break
                    assert time.monotonic() < deadline, f"deliveries did not settle: {states}"
                    await asyncio.sleep(0.3)
                if route != "simulated":
                    await asyncio.sleep(2)  # the head-ends' modelled latency, with room
        finally:
            _stop(gw)
            log.close()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        per_text = dict(conn.execute("SELECT body, count(*) FROM han_requests GROUP BY body").fetchall())
    committed = sum(b for *_, b in outcomes)
    print(f"{route}: cycles {len(outcomes)}, committed before the kill {committed}, "
          f"frames at the meters {sum(meters.frames.values())}")
    assert committed >= CYCLES // 2  # the commit-then-kill cycles did hit the window
    assert all(n == 1 for n in per_text.values()), per_text
    for esi, _rid, se_id, _b in outcomes:
        assert meters.frames.get(f"{esi}|display_message|{se_id}") == 1, (esi, se_id, meters.frames)
    for cycle, (esi, *_rest) in enumerate(outcomes):
        assert meters.texts.get(f"{esi}|idem {cycle}") == 1, (esi, cycle, meters.texts)
    assert max(meters.frames.values()) == 1
