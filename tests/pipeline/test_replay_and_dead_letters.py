"""Webhook dead letters with a real receiver that fails, and route events replayed after a gateway
restart (`simulated_remote` against a `hangw sim-field` process) recorded once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from gateway.store.schema import han_frame_log, han_transitions, webhook_outbox
from gateway.store.store import Store, open_store
from sandbox.ports import free_port
from sandbox.simfield import premises, premises_csv
from sandbox.simulated_route import RemoteSimulatedRoute
from sandbox.testbed import wait_http
from tests.gateway.conftest import Gateway, gateway_config, start_server, stop_server
from tests.pipeline.conftest import CUSTOMER, running_stack


class Receiver:
    """A webhook receiver on a real port that refuses the events whose state is in `refuse`."""

    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.got: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            event = json.loads(await request.body())
            if event["state"] in self.refuse:
                return Response(status_code=500)
            self.got.append(event)
            return Response(status_code=204)


async def _until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_failing_event_is_dead_lettered_without_blocking_later_ones_and_redelivered(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.refuse = {"delivered"}
    server, task, port = await start_server(receiver.app)
    try:
        async with running_stack(tmp_path / "d", pipeline={"webhook_max_attempts": 1}) as s:
            _p, token = await s.gw.new_party("Acme", "123456789")
            esi = s.premises[0].esi_id
            await s.customer(token, [esi])
            hook = (await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token),
                                           json={"url": f"http://127.0.0.1:{port}/hook"})).json()["id"]
            rid = (await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "hook",
                                           "confirmation_required": True})).json()["id"]

            async def confirmed_event() -> bool:
                return any(e["state"] == "confirmed" and e["request_id"] == rid for e in receiver.got)
            # "delivered" failed once (the limit here) and was set aside: "confirmed", a later event
            # of the same request, was not held back behind it.
            await s.eventually(confirmed_event, advance=5)
            dead = (await s.gw.client.get(f"/v1/webhooks/{hook}/dead-letters", headers=s.gw.auth(token))).json()
            assert len(dead["items"]) == 1
            letter = dead["items"][0]
            assert json.loads(letter["event"])["state"] == "delivered"
            assert letter["attempts"] == 1 and letter["last_error"] == "HTTP 500" and letter["dead_at"]
            assert not any(e["state"] == "delivered" for e in receiver.got)

            # Another party cannot see or redeliver them.
            _o, other = await s.gw.new_party("Bolt", "987654321")
            assert (await s.gw.client.get(f"/v1/webhooks/{hook}/dead-letters",
                                          headers=s.gw.auth(other))).status_code == 404
            assert (await s.gw.client.post(f"/v1/webhooks/{hook}/dead-letters/{letter['id']}/redeliver",
                                           headers=s.gw.auth(other))).status_code == 404

            receiver.refuse = set()  # the receiver is fixed: send it again
            r = await s.gw.client.post(f"/v1/webhooks/{hook}/dead-letters/{letter['id']}/redeliver",
                                       headers=s.gw.auth(token))
            assert r.status_code == 200 and r.json() == {"requeued": 1}

            async def redelivered() -> bool:
                return any(e["state"] == "delivered" and e["request_id"] == rid for e in receiver.got)
            await _until(redelivered)
            dead = (await s.gw.client.get(f"/v1/webhooks/{hook}/dead-letters", headers=s.gw.auth(token))).json()
            assert dead["items"] == []
            missing = await s.gw.client.post(f"/v1/webhooks/{hook}/dead-letters/{letter['id']}/redeliver",
                                             headers=s.gw.auth(token))
            assert missing.status_code == 404 and missing.json()["code"] == "unknown_dead_letter"
    finally:
        await stop_server(server, task)


async def _counts(store: Store) -> tuple[int, int, int]:
    async with store.engine.connect() as conn:
        history = (await conn.execute(sa.select(sa.func.count()).select_from(han_transitions))).scalar_one()
        answers = (await conn.execute(sa.select(sa.func.count()).select_from(han_frame_log).where(
            han_frame_log.c.direction == "in"))).scalar_one()
        hooks = (await conn.execute(sa.select(sa.func.count()).select_from(webhook_outbox))).scalar_one()
    return history, answers, hooks


async def test_events_replayed_after_a_restart_are_recorded_once(tmp_path: Path) -> None:
    field_port = free_port()
    field = subprocess.Popen([sys.executable, "-m", "gateway", "sim-field", "--port", str(field_port),
                              "--per-tdsp", "1", "--speed", "60"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    receiver = Receiver()
    hook_server, hook_task, hook_port = await start_server(receiver.app)
    config = gateway_config(tmp_path / "d", pipeline={"poll_interval_seconds": 0.05})
    config.data_dir.mkdir(parents=True)
    store = await open_store(config.storage_url)
    clock = ManualClock()
    _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="t", now=clock.now())

    async def start_gateway() -> tuple[Any, Any, httpx.AsyncClient, Gateway]:
        # A fresh route reads the field's event log from the start, as after a restart.
        app = create_app(config, store=store, clock=clock, run_timers=False,
                         routes=RouteSet(RemoteSimulatedRoute(f"http://127.0.0.1:{field_port}")))
        server, task, port = await start_server(app)
        config.server.public_url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=config.server.public_url, timeout=20)
        return server, task, client, Gateway(config.server.public_url, client, store, clock, config, op_token)

    try:
        await wait_http(f"http://127.0.0.1:{field_port}/counts")
        server, task, client, gw = await start_gateway()
        items = premises(1)
        esi = items[0].esi_id
        try:
            await gw.load_premises(premises_csv(items, CUSTOMER))
            _p, token = await gw.new_party("Acme", "123456789")
            r = await gw.invite(token, esi_ids=[(esi, items[0].meter_number)], email=CUSTOMER)
            assert r.status_code == 201, r.text
            assert (await gw.consent(CUSTOMER)).status_code == 200
            assert (await client.post("/v1/webhooks", headers=gw.auth(token),
                                      json={"url": f"http://127.0.0.1:{hook_port}/hook"})).status_code == 201
            r = await client.post("/v1/han-requests", headers=gw.auth(token), json={
                "kind": "text", "esi_ids": [esi], "text": "once", "confirmation_required": True})
            assert r.status_code == 202, r.text

            async def confirmed() -> bool:
                return any(e["state"] == "confirmed" for e in receiver.got)
            await _until(confirmed, timeout=30)
            await asyncio.sleep(1.0)  # let the last events settle
            before = await _counts(store)
            sent_before = len(receiver.got)
        finally:
            await client.aclose()
            await stop_server(server, task)

        server, task, client, gw = await start_gateway()  # the restart: the log is read again
        try:
            await asyncio.sleep(3.0)  # the route reads the whole log (long-poll of 1 s) and stores it
            assert await _counts(store) == before
            assert len(receiver.got) == sent_before
            # Each (delivery, device, state) once: the IHD and the thermostat each confirm once.
            seen = [(e["delivery_id"], e["eui64"], e["state"]) for e in receiver.got]
            assert len(seen) == len(set(seen))
            # ("submitted" may be skipped: the meter's answer can be stored before the route's.)
            assert {state for _d, _e, state in seen} >= {"delivered", "confirmed"}
        finally:
            await client.aclose()
            await stop_server(server, task)
    finally:
        field.terminate()
        field.wait(10)
        await stop_server(hook_server, hook_task)
        await store.close()
