"""Two `hangw serve` processes on one PostgreSQL database share the webhook events and the mail
queue: each event is accepted by its receiver once, in its request's order, while one party's
receiver hangs. One instance is killed with `kill -9` while it is sending both an invitation (the
SMTP server holds it) and an event (the receiver holds it): the other instance sends each of them
once the lease is over — the event under the same `webhook-id` and signature — and nothing else
twice.

Outside the gateways: a webhook receiver (loopback HTTP in this test) and an SMTP server
(aiosmtpd) count what arrives and find which process sent it from the connection's port
(/proc). The events are queued the way the pipeline's transitions queue them (the store's
`enqueue`, in a transaction of this test's own): what is tested is their sending."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request, Response

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.pipeline.webhooks import verify
from gateway.store import webhooks as webhook_store
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.testbed import wait_http
from tests.e2e.test_crash import _stop
from tests.gateway.conftest import PREMISES_CSV, start_server, stop_server

# webhook_lease_seconds, webhook_timeout_seconds: short for the test, yet an attempt slowed down
# by a loaded machine must still end within them (or it is made again: at least once).
Popen = subprocess.Popen[bytes]
LEASE, TIMEOUT = 6.0, 5.0
# [mail]: the mail is held from before the event is, so its attempt must outlast that.
MAIL_LEASE, MAIL_TIMEOUT = 8.0, 7.0
SLACK = 2.0
REQUESTS, EVENTS = 6, 4  # the good party's requests and events per request
CUSTOMER = ("10443720000000001", "MTR-1", "alice@example.test")


def _socket_owner(port: int, pids: list[int]) -> int | None:
    """The process (of `pids`) whose TCP socket has local port `port` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return None


@dataclass
class Receiver:
    """Party B's good receiver (/b) and party A's hanging one (/a)."""

    pids: list[int]
    victim: int = 0  # the first event this process sends (once set) is held until it is killed
    secret: str = ""
    accepted: list[tuple[float, int | None, str, int, int]] = field(default_factory=list)  # t, pid, id, req, n
    bad_signatures: int = 0
    others: list[str] = field(default_factory=list)  # the types of events that are not the test's
    held: asyncio.Future[tuple[int | None, str]] | None = None
    held_at: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hanging: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the test is over: /a answers

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/b")
        async def good(request: Request) -> Response:
            body = (await request.body()).decode()
            headers = {k.lower(): v for k, v in request.headers.items()}
            if not verify(self.secret, headers, body):
                self.bad_signatures += 1
                return Response(status_code=400)
            event = json.loads(body)
            if "request" not in event:
                # Not one of the test's events: the invitation's own `agreement.invited`, which
                # the event log sends to B's webhook too. Taken, and never the one held.
                self.others.append(event.get("type", "?"))
                return Response(status_code=204)
            assert request.client is not None
            pid = _socket_owner(request.client.port, self.pids)
            if pid == self.victim and self.held is not None and not self.held.done():
                self.held_at = time.monotonic()
                self.held.set_result((pid, headers["webhook-id"]))
                await self.release.wait()  # its sender is dead by now: nobody reads this answer
                return Response(status_code=503)
            await asyncio.sleep(0.01)
            self.accepted.append((time.monotonic(), pid, headers["webhook-id"], event["request"], event["n"]))
            return Response(status_code=204)

        @app.post("/a")
        async def hangs(request: Request) -> Response:
            self.hanging += 1
            await self.done.wait()
            return Response(status_code=503)

        return app


class SmtpSink:
    """An SMTP server that stalls a message at RCPT while `stall` is set (the message is not
    taken yet), noting which process sent it."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.stall = False
        self.stalled_by: int | None = None
        self.stalled_at = 0.0
        self.received: list[tuple[float, int | None, str, str]] = []  # time, pid, To, Subject

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.stall:
            self.stalled_at = time.monotonic()
            self.stalled_by = _socket_owner(session.peer[1], self.pids)
            while self.stall:
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        message = email.message_from_bytes(envelope.content)
        self.received.append((time.monotonic(), _socket_owner(session.peer[1], self.pids), str(message["To"]),
                              str(message["Subject"])))
        return "250 OK"


def _config(tmp_path: Path, i: int, port: int, *, pg: str, key: str, smtp_port: int) -> Path:
    data = tmp_path / f"gw{i}"
    cfg = tmp_path / f"gw{i}.toml"
    cfg.write_text(f"""data_dir = "{data}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[storage]
url = "{pg}"
[security]
device_key_secret = "{key}"
[mail]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_tls = "none"
smtp_timeout_seconds = {MAIL_TIMEOUT}
lease_seconds = {MAIL_LEASE}
[agreements]
lifecycle_interval_seconds = 0.3
[pipeline]
poll_interval_seconds = 0.1
webhook_timeout_seconds = {TIMEOUT}
webhook_lease_seconds = {LEASE}
webhook_max_attempts = 2
webhook_allowed_networks = ["127.0.0.0/8"]
[rate_limit]
requests_per_second = 1000.0
burst = 1000
[log]
level = "WARNING"
""")
    return cfg


@contextlib.asynccontextmanager
async def _instances(tmp_path: Path, pg: str, smtp_port: int) -> AsyncIterator[list[tuple[Popen, str]]]:
    key = Fernet.generate_key().decode()
    log = (tmp_path / "serve.log").open("ab")
    procs: list[tuple[Popen, str]] = []
    try:
        for i in range(2):
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c",
                                     str(_config(tmp_path, i, port, pg=pg, key=key, smtp_port=smtp_port))],
                                    stdout=log, stderr=subprocess.STDOUT)
            procs.append((proc, f"http://127.0.0.1:{port}"))
        await asyncio.gather(*(wait_http(f"{base}/healthz", 40) for _p, base in procs))
        yield procs
    finally:
        for proc, _base in procs:
            if proc.poll() is None:
                _stop(proc)
        log.close()


async def _eventually(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


async def test_killed_instances_events_and_mails_are_taken_over_once(tmp_path: Path, migrated_pg_url: str) -> None:
    store = await open_store(migrated_pg_url)  # at head already; the instances find nothing to migrate
    _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="t", now=SystemClock().now())
    pids: list[int] = []
    receiver = Receiver(pids)
    receiver.held = asyncio.get_running_loop().create_future()
    rx_server, rx_task, rx_port = await start_server(receiver.app())
    sink = SmtpSink(pids)
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        async with _instances(tmp_path, migrated_pg_url, smtp.port) as procs:
            pids.extend(p.pid for p, _b in procs)
            by_pid = {p.pid: (p, base) for p, base in procs}
            op = {"Authorization": f"Bearer {op_token}"}
            async with httpx.AsyncClient(base_url=procs[0][1], timeout=20) as http:
                r = await http.post("/v1/premises/import", content=PREMISES_CSV,
                                    headers={**op, "Content-Type": "text/csv"})
                assert r.status_code == 200, r.text
                tokens, hooks = [], []
                for name, duns, path in (("Alpha", "111111111", "a"), ("Bravo", "222222222", "b")):
                    r = await http.post("/v1/parties", headers=op, json={
                        "name": name, "duns": duns, "contact_email": f"api@{name.lower()}.test"})
                    party = r.json()["id"]
                    r = await http.post(f"/v1/parties/{party}/credentials", headers=op, json={"label": "t"})
                    tokens.append({"Authorization": f"Bearer {r.json()['token']}"})
                    r = await http.post("/v1/webhooks", headers=tokens[-1],
                                        json={"url": f"http://127.0.0.1:{rx_port}/{path}"})
                    assert r.status_code == 201, r.text
                    hooks.append(r.json())
            receiver.secret = hooks[1]["secret"]
            victim, last = pids

            # An invitation: the instance that stores it sends it at once; the SMTP server holds
            # that send.
            sink.stall = True
            async with httpx.AsyncClient(base_url=by_pid[victim][1], timeout=30) as http:
                invite = asyncio.create_task(http.post("/v1/agreements", headers=tokens[1], json={
                    "kind": "in_home_device_services", "scopes": ["text"], "duration_months": 12,
                    "premises": [{"esi_id": CUSTOMER[0], "meter_number": CUSTOMER[1]}],
                    "customer_email": CUSTOMER[2]}))
                await _eventually(lambda: sink.stalled_by is not None, 20, "the invitation's send")
                assert sink.stalled_by == victim

                # The events, as the pipeline queues them: A's three (to a receiver that hangs),
                # then B's requests, each with its events in order. Both instances send them; the
                # receiver holds the first one the victim sends.
                receiver.victim = victim
                now = SystemClock().now()
                rows = [{"webhook_id": hooks[0]["id"], "request_id": 100 + n, "created_at": now,
                         "body": json.dumps({"request": 100 + n, "n": 0})} for n in range(3)]
                rows += [{"webhook_id": hooks[1]["id"], "request_id": req, "created_at": now,
                          "body": json.dumps({"request": req, "n": n})}
                         for req in range(REQUESTS) for n in range(EVENTS)]
                async with store.transaction() as conn:
                    await webhook_store.enqueue(conn, rows)
                held_pid, held_id = await asyncio.wait_for(receiver.held, 20)
                assert held_pid == victim

                # The victim dies holding both claims.
                os.kill(victim, signal.SIGKILL)
                receiver.release.set()
                sink.stall = False
                with contextlib.suppress(httpx.HTTPError):
                    await invite  # its instance died mid-request
            survivors = [last]

            await _eventually(lambda: len(receiver.accepted) >= REQUESTS * EVENTS, 30, "B's events")
            await _eventually(lambda: any(CUSTOMER[2] in to for _t, _p, to, _s in sink.received), 20,
                              "the invitation")
            # The held event goes again once its lease has run out (on a busy machine that may be
            # after B's events are through).
            await _eventually(lambda: any(i == held_id for _t, _p, i, _r, _n in receiver.accepted), 30,
                              "the held event, sent again")
            await asyncio.sleep(0.5)  # anything sent twice would arrive now

            # Every event of B accepted once, in its request's order, correctly signed.
            ids = [i for _t, _p, i, _r, _n in receiver.accepted]
            twice = [(round(t - receiver.held_at, 2), p, i) for t, p, i, *_ in receiver.accepted if ids.count(i) > 1]
            assert len(ids) == len(set(ids)) == REQUESTS * EVENTS, (twice, (tmp_path / "serve.log").read_text()[-3000:])
            assert receiver.bad_signatures == 0
            for req in range(REQUESTS):
                assert [n for _t, _p, _i, r, n in receiver.accepted if r == req] == list(range(EVENTS))
            # The held event: sent again by a live instance, after the lease, with the same id.
            again = [(t, p) for t, p, i, _r, _n in receiver.accepted if i == held_id]
            assert len(again) == 1 and again[0][1] in survivors, again
            # Not before the dead instance's claim ran out: it was taken a moment before the held
            # send arrived (how long a moment, a loaded machine decides: up to SLACK).
            assert again[0][0] - receiver.held_at >= LEASE - SLACK, again[0][0] - receiver.held_at
            # A's hanging receiver held none of B's events up.
            assert receiver.hanging >= 1

            # The invitation's own event reached B's receiver too (the event log sends it).
            assert "agreement.invited" in receiver.others, receiver.others
            # The invitation reached the customer once, from the instance left.
            invitations = [(t, p) for t, p, to, _s in sink.received if CUSTOMER[2] in to]
            assert len(invitations) == 1 and invitations[0][1] == last, (invitations, last)
            # Not before the dead instance's claim (taken as it stored the mail) ran out.
            assert invitations[0][0] - sink.stalled_at >= MAIL_LEASE - SLACK, invitations[0][0] - sink.stalled_at
            async with httpx.AsyncClient(base_url=by_pid[last][1], timeout=20) as http:
                listed = (await http.get("/v1/agreements", headers=tokens[1])).json()["items"]
                assert [a["state"] for a in listed] == ["invited"]
    finally:
        smtp.stop()
        receiver.release.set()
        receiver.done.set()
        await stop_server(rx_server, rx_task)
        await store.close()
