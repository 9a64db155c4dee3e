"""One party's webhook cannot stop or delay another's (issue 11, defect 7): over real HTTP, party A
has every kind of broken receiver — a URL that no longer parses (`http://¼/`, stored by a version
that accepted it), a name that does not resolve, a receiver that hangs, one that answers a byte at
a time, one that resets the connection, a stored secret that is not base64 — while party B's
receiver gets every event within a bound. A's failures are counted as attempts and end as dead
letters, with one log line per attempt and no traceback. The delivery-time address check (DNS or
the operator's allowance can change after registration) is shown on a gateway without the
loopback allowance."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response

from gateway.pipeline.webhooks import new_secret, verify
from gateway.store.schema import webhook_outbox, webhooks
from tests.gateway.conftest import start_server, stop_server
from tests.pipeline.conftest import Stack, running_stack

TIMEOUT = 3.0  # webhook_timeout_seconds in these tests
BOUND = 1.5  # B's events arrive this soon after the gateway shows the state


class GoodReceiver:
    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, str], str]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            body = (await request.body()).decode()
            self.got.append((time.monotonic(), {k.lower(): v for k, v in request.headers.items()}, body))
            return Response(status_code=204)

    def states(self, request_id: int) -> list[str]:
        return [json.loads(b)["state"] for _t, _h, b in self.got if json.loads(b)["request_id"] == request_id]


class BadReceiver:
    """A TCP server that misbehaves: "hang" (reads, never answers), "drip" (answers one byte every
    0.3 s: each read is quick, the answer is not), "reset" (closes at once)."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            if self.how == "reset":
                writer.transport.abort()
                return
            await reader.readuntil(b"\r\n\r\n")
            if self.how == "hang":
                await asyncio.sleep(3600)
            for byte in b"HTTP/1.1 204 No Content\r\n\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.3)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass

    async def stop(self) -> None:
        assert self.server is not None
        for writer in self.writers:
            writer.transport.abort()
        self.server.close()


async def _insert_webhook(s: Stack, party_id: int, url: str, secret: str | None = None) -> int:
    """A webhook row as an earlier version stored it (URLs were not checked then)."""
    async with s.gw.store.engine.begin() as conn:
        result = await conn.execute(webhooks.insert().values(
            party_id=party_id, url=url, secret=secret or new_secret(), created_at=s.gw.clock.now()))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def _dead_letters(s: Stack, token: str, hook: int) -> list[dict[str, Any]]:
    r = await s.gw.client.get(f"/v1/webhooks/{hook}/dead-letters", headers=s.gw.auth(token))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_broken_receivers_of_one_party_do_not_stop_or_delay_another(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.pipeline.webhooks")
    good = GoodReceiver()
    server, task, good_port = await start_server(good.app)
    bad = {how: BadReceiver(how) for how in ("hang", "drip", "reset")}
    ports = {how: await b.start() for how, b in bad.items()}
    try:
        # Fewer senders than A has webhooks: without the per-party share, A's would take them all.
        async with running_stack(tmp_path / "d", pipeline={
                "webhook_timeout_seconds": TIMEOUT, "webhook_max_attempts": 2,
                "webhook_concurrency": 5, "webhook_concurrency_per_party": 3}) as s:
            party_a, token_a = await s.gw.new_party("Acme", "123456789")
            _b, token_b = await s.gw.new_party("Bolt", "987654321")
            esi_a, esi_b = s.premises[0].esi_id, s.premises[1].esi_id
            await s.customer(token_a, [esi_a])
            await s.customer(token_b, [esi_b])

            # A's receivers: registered through the API where the API accepts them...
            hooks_a: dict[str, int] = {}
            for how, port in ports.items():
                r = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token_a),
                                           json={"url": f"http://127.0.0.1:{port}/hook"})
                assert r.status_code == 201, r.text
                hooks_a[how] = r.json()["id"]
            for extra in range(3):  # with "hang" and "drip": as many stuck receivers as senders
                r = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token_a),
                                           json={"url": f"http://127.0.0.1:{ports['hang']}/hook/{extra}"})
                assert r.status_code == 201, r.text
                hooks_a[f"hang {extra}"] = r.json()["id"]
            r = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token_a),
                                       json={"url": "http://hangw-hooks.invalid/events"})
            assert r.status_code == 201, r.text  # it may resolve later; it does not now
            hooks_a["unresolvable"] = r.json()["id"]
            # ...and rows an earlier version stored, which the API refuses now.
            assert (await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token_a),
                                           json={"url": "http://¼/"})).status_code == 422
            hooks_a["idna"] = await _insert_webhook(s, party_a, "http://¼/")
            hooks_a["no host"] = await _insert_webhook(s, party_a, "http://")
            hooks_a["bad secret"] = await _insert_webhook(s, party_a, f"http://127.0.0.1:{good_port}/hook",
                                                          secret="whsec_not*base64")
            w = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token_b),
                                       json={"url": f"http://127.0.0.1:{good_port}/hook"})
            assert w.status_code == 201, w.text
            secret_b = w.json()["secret"]

            # A's events first: its hanging receiver is holding a connection when B's come.
            rid_a = (await s.request(token_a, {"kind": "text", "esi_ids": [esi_a], "text": "a",
                                               "confirmation_required": True})).json()["id"]

            async def a_is_hanging() -> bool:
                return bad["hang"].connections > 0 and bad["drip"].connections > 0
            await s.eventually(a_is_hanging, timeout=5)
            rid_b = (await s.request(token_b, {"kind": "text", "esi_ids": [esi_b], "text": "b",
                                               "confirmation_required": True})).json()["id"]

            # Each state of B's request, as soon as the gateway shows it, reaches B's receiver
            # within BOUND (A's hanging attempts last TIMEOUT each).
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 20
            while len(seen) < 3:
                assert time.monotonic() < deadline, f"B's request did not reach confirmed: {seen}"
                summary = await s.summary(token_b, rid_b)
                states = set(summary["premises_by_state"]) | set(summary["devices_by_state"])
                # A state counts as shown once it or a later one is (the summary counts current states).
                for state, shown in (("submitted", {"submitted", "delivered", "confirmed"}),
                                     ("delivered", {"delivered", "confirmed"}), ("confirmed", {"confirmed"})):
                    if state not in seen and shown & states:
                        seen[state] = time.monotonic()
                await s.advance(1)
            for state, shown_at in seen.items():
                while state not in good.states(rid_b) and time.monotonic() < shown_at + BOUND:
                    await asyncio.sleep(0.02)
                assert state in good.states(rid_b), (state, good.states(rid_b))
                arrived = next(t for t, _h, b in good.got if json.loads(b)["state"] == state
                               and json.loads(b)["request_id"] == rid_b)
                assert arrived - shown_at < BOUND, (state, arrived - shown_at)
            assert good.states(rid_b).index("submitted") < good.states(rid_b).index("confirmed")
            assert all(verify(secret_b, h, b) for _t, h, b in good.got)
            assert not any(json.loads(b)["request_id"] == rid_a for _t, _h, b in good.got)

            # A's events were tried, counted, and set aside with the reason.
            waiting = set(hooks_a.values())
            deadline = time.monotonic() + 12 * TIMEOUT
            while waiting:  # polled gently: A's token has a rate limit too
                assert time.monotonic() < deadline, f"no dead letter yet on {waiting}"
                waiting = {hook for hook in waiting if not await _dead_letters(s, token_a, hook)}
                await asyncio.sleep(0.5)
            reasons = {}
            for how, hook in hooks_a.items():
                letter = (await _dead_letters(s, token_a, hook))[0]
                assert letter["attempts"] == 2 and json.loads(letter["event"])["request_id"] == rid_a, letter
                reasons[how] = letter["last_error"]
            assert reasons["hang"] == reasons["hang 0"] == f"no answer within {TIMEOUT:g} s"
            assert reasons["drip"] == f"no answer within {TIMEOUT:g} s"
            assert "hangw-hooks.invalid does not resolve" in reasons["unresolvable"]
            assert "Invalid IDNA hostname" in reasons["idna"]
            assert "a host is required" in reasons["no host"]
            assert reasons["reset"] and reasons["bad secret"]
            assert bad["hang"].connections >= 2 and bad["reset"].connections >= 2

            # One log line per failed attempt of A's (no traceback, no flood): as many lines as
            # attempts the gateway counted.
            async with s.gw.store.engine.connect() as conn:
                attempts = (await conn.execute(sa.select(sa.func.sum(webhook_outbox.c.attempts)).where(
                    webhook_outbox.c.webhook_id.in_(hooks_a.values())))).scalar_one()
            records = [r for r in caplog.records if r.name == "gateway.pipeline.webhooks"]
            assert not any(r.exc_info for r in records)
            lines = [r.getMessage() for r in records if "webhook" in r.getMessage()]
            assert attempts >= 2 * len(hooks_a) and len(lines) <= attempts, (attempts, lines)
    finally:
        for b in bad.values():
            await b.stop()
        await stop_server(server, task)


async def test_the_address_is_checked_again_at_every_send(tmp_path: Path) -> None:
    """A webhook stored while loopback was allowed (or whose name resolved elsewhere then) is not
    sent to once the address is refused: the attempt fails with the reason, the receiver gets
    nothing, and the event becomes a dead letter like any failure."""
    good = GoodReceiver()
    server, task, port = await start_server(good.app)
    try:
        async with running_stack(tmp_path / "d", pipeline={
                "webhook_allowed_networks": [], "webhook_max_attempts": 1}) as s:
            party, token = await s.gw.new_party("Acme", "123456789")
            esi = s.premises[0].esi_id
            await s.customer(token, [esi])
            by_ip = await _insert_webhook(s, party, f"http://127.0.0.1:{port}/hook")
            by_name = await _insert_webhook(s, party, f"http://localhost:{port}/hook")
            r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "x"})
            assert r.status_code == 202, r.text

            async def dead() -> bool:
                return bool(await _dead_letters(s, token, by_ip) and await _dead_letters(s, token, by_name))
            await s.eventually(dead, advance=1)
            ip_error = (await _dead_letters(s, token, by_ip))[0]["last_error"]
            name_error = (await _dead_letters(s, token, by_name))[0]["last_error"]
            assert "127.0.0.1 is a loopback address" in ip_error, ip_error
            assert "localhost resolves to a loopback address" in name_error, name_error
            await asyncio.sleep(0.3)
            assert good.got == []
    finally:
        await stop_server(server, task)


async def test_on_postgresql_a_broken_webhook_does_not_stop_another_party(tmp_path: Path, migrated_pg_url: str) -> None:
    """The sender's queries on PostgreSQL: A's stored `http://¼/` (the issue's URL) is counted and
    dead-lettered while B's receiver gets its events."""
    good = GoodReceiver()
    server, task, port = await start_server(good.app)
    try:
        async with running_stack(tmp_path / "d", storage={"url": migrated_pg_url},
                                 pipeline={"webhook_max_attempts": 2}) as s:
            party_a, token_a = await s.gw.new_party("Acme", "123456789")
            _b, token_b = await s.gw.new_party("Bolt", "987654321")
            esi_a, esi_b = s.premises[0].esi_id, s.premises[1].esi_id
            await s.customer(token_a, [esi_a])
            await s.customer(token_b, [esi_b])
            broken = await _insert_webhook(s, party_a, "http://¼/")
            assert (await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token_b),
                                           json={"url": f"http://127.0.0.1:{port}/hook"})).status_code == 201
            await s.request(token_a, {"kind": "text", "esi_ids": [esi_a], "text": "a"})
            rid_b = (await s.request(token_b, {"kind": "text", "esi_ids": [esi_b], "text": "b"})).json()["id"]

            async def both() -> bool:
                return "delivered" in good.states(rid_b) and bool(await _dead_letters(s, token_a, broken))
            await s.eventually(both, advance=1)
            letter = (await _dead_letters(s, token_a, broken))[0]
            assert letter["attempts"] == 2 and "Invalid IDNA hostname" in letter["last_error"]
    finally:
        await stop_server(server, task)
