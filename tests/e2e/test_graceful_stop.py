"""A graceful stop (SIGTERM) of one of two `hangw serve` instances on one PostgreSQL database
hands back the claims it holds: the other instance takes the work at once instead of when the
lease runs out (issue 14).

The victim is stopped with SIGTERM while it is sending a webhook event (the receiver holds that
POST); the survivor sends the event — same `webhook-id`, correctly signed — within a small part of
`webhook_lease_seconds` (60 s here), and every event is accepted once, in its request's order.
Outside the gateways: the webhook receiver of tests/e2e/test_outbox_takeover.py, which tells the
sending process by the connection's port."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store import webhooks as webhook_store
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.testbed import wait_http
from tests.e2e.test_crash import _stop
from tests.e2e.test_outbox_takeover import Receiver, _eventually
from tests.gateway.conftest import PREMISES_CSV, pg_url, start_server, stop_server

__all__ = ["pg_url"]

LEASE, TIMEOUT = 60.0, 30.0  # the held attempt must not time out on its own before the stop
REQUESTS, EVENTS = 3, 3


def _config(tmp_path: Path, i: int, port: int, pg: str, key: str) -> Path:
    cfg = tmp_path / f"gw{i}.toml"
    cfg.write_text(f"""data_dir = "{tmp_path / f"gw{i}"}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[storage]
url = "{pg}"
[security]
device_key_secret = "{key}"
[pipeline]
poll_interval_seconds = 0.1
webhook_timeout_seconds = {TIMEOUT}
webhook_lease_seconds = {LEASE}
webhook_allowed_networks = ["127.0.0.0/8"]
[rate_limit]
requests_per_second = 1000.0
burst = 1000
[log]
level = "INFO"
""")
    return cfg


async def test_sigterm_hands_back_a_claimed_webhook_event_to_the_other_instance(tmp_path: Path,
                                                                               pg_url: str) -> None:
    store = await open_store(pg_url)  # migrated once here; the instances find it at head
    _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="t", now=SystemClock().now())
    pids: list[int] = []
    receiver = Receiver(pids)
    receiver.held = asyncio.get_running_loop().create_future()
    rx_server, rx_task, rx_port = await start_server(receiver.app())
    key = Fernet.generate_key().decode()
    log = (tmp_path / "serve.log").open("ab")
    procs: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for i in range(2):
            port = free_port()
            procs.append((subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c",
                                            str(_config(tmp_path, i, port, pg_url, key))],
                                           stdout=log, stderr=subprocess.STDOUT), f"http://127.0.0.1:{port}"))
        await asyncio.gather(*(wait_http(f"{base}/healthz", 40) for _p, base in procs))
        pids.extend(p.pid for p, _b in procs)
        op = {"Authorization": f"Bearer {op_token}"}
        async with httpx.AsyncClient(base_url=procs[1][1], timeout=20) as http:
            r = await http.post("/v1/premises/import", content=PREMISES_CSV, headers={**op, "Content-Type": "text/csv"})
            assert r.status_code == 200, r.text
            r = await http.post("/v1/parties", headers=op, json={
                "name": "Bravo", "duns": "222222222", "contact_email": "api@bravo.test"})
            r = await http.post(f"/v1/parties/{r.json()['id']}/credentials", headers=op, json={"label": "t"})
            party = {"Authorization": f"Bearer {r.json()['token']}"}
            r = await http.post("/v1/webhooks", headers=party, json={"url": f"http://127.0.0.1:{rx_port}/b"})
            assert r.status_code == 201, r.text
            hook = r.json()
        receiver.secret = hook["secret"]
        victim, survivor = procs[0][0], procs[1][0]
        receiver.victim = victim.pid

        now = SystemClock().now()
        async with store.transaction() as conn:  # as the pipeline's transitions queue them
            await webhook_store.enqueue(conn, [
                {"webhook_id": hook["id"], "request_id": req, "created_at": now,
                 "body": json.dumps({"request": req, "n": n})} for req in range(REQUESTS) for n in range(EVENTS)])
        _pid, held_id = await asyncio.wait_for(receiver.held, 20)

        victim.send_signal(signal.SIGTERM)  # mid-attempt: the victim holds the event's claim
        # A graceful stop, not a kill: uvicorn shuts the app down (its lifespan's shutdown runs) and
        # then ends with the signal it caught.
        assert await asyncio.to_thread(victim.wait, 20) in (0, -signal.SIGTERM)
        assert "Finished server process" in (tmp_path / "serve.log").read_text()
        receiver.release.set()
        await _eventually(lambda: len(receiver.accepted) >= REQUESTS * EVENTS, 30, "the events")
        await asyncio.sleep(0.5)  # anything sent twice would arrive now

        ids = [i for _t, _p, i, _r, _n in receiver.accepted]
        assert len(ids) == len(set(ids)) == REQUESTS * EVENTS, receiver.accepted
        assert receiver.bad_signatures == 0
        for req in range(REQUESTS):
            assert [n for _t, _p, _i, r, n in receiver.accepted if r == req] == list(range(EVENTS))
        again = [(t, p) for t, p, i, _r, _n in receiver.accepted if i == held_id]
        assert len(again) == 1 and again[0][1] == survivor.pid, again
        taken_over_s = again[0][0] - receiver.held_at
        print(f"the held event reached the receiver from the other instance {taken_over_s:.1f} s after the "
              f"victim took it (lease {LEASE:.0f} s)")
        assert taken_over_s < LEASE / 4, taken_over_s  # handed back, not left to run out
        assert "claimed webhook events handed back to the other instances" in (tmp_path / "serve.log").read_text()
    finally:
        receiver.release.set()
        receiver.done.set()
        for proc, _base in procs:
            if proc.poll() is None:
                _stop(proc)
        log.close()
        await stop_server(rx_server, rx_task)
        await store.close()
