"""On-demand meter reads and usage events (issue 16) from the outside: a real gateway over HTTP
with the simulated route and field, a real webhook receiver on a loopback port.

- A party with an Energy Data agreement asks for a read (202 pending), the worker reads the meter
  through the simulated route, and `GET /v1/meter-reads/{id}` has the register exactly as the
  simulated meter gives it; `meter_read.completed` arrives on the party's webhook.
- A second party is refused (404, as for an unknown premise) and sees none of the first's reads.
- The TDSP's cap (2 here): the third read is a 429 problem naming the TDSP, the limit and the
  reset (Texas midnight) and stores nothing; another TDSP's count is its own.
- An unreachable meter and a route without the operation: failed, with their typed reasons.
- A continuous agreement's ingestion run announces `usage.available` once, with its period.
- The catalogue examples of these events in docs/third-party-api.md have the real events' shape.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ams_adapters.usage import MeterRead
from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from gateway.store.store import Store
from sandbox.simfield import build_field, premises, premises_csv
from sandbox.simulated_route import SimulatedRoute
from simulators.clock import VirtualClock
from tests.gateway.conftest import gateway_config, open_test_store, start_server, stop_server
from tests.pipeline.conftest import CUSTOMER
from tests.pipeline.test_events import USAGE_EVENTS, Receiver, Receivers, _catalogue, _feed, _shape_differences
from tests.pipeline.test_usage_e2e import CENTRAL, Field, running_field, store_url  # noqa: F401 (fixture)

CHECKED_HERE = USAGE_EVENTS
"""Catalogue entries whose examples this module checks against real events."""


async def _until_done(f: Field, headers: dict[str, str], read_id: int, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = await f.gw.client.get(f"/v1/meter-reads/{read_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] != "pending":
            return dict(r.json())
        assert time.monotonic() < deadline, f"read {read_id} still pending"
        await asyncio.sleep(0.05)


async def _agreement(f: Field, token: str, tdsp: str, mode: str = "continuous") -> int:
    data: dict[str, Any] = {"mode": mode, "interval": "15min"}
    if mode == "one_time":
        now = f.gw.clock.now()
        data |= {"from": (now - timedelta(days=2)).replace(minute=0, second=0, microsecond=0).isoformat(),
                 "to": (now - timedelta(days=1)).replace(minute=0, second=0, microsecond=0).isoformat()}
    r = await f.invite(token, tdsp, data)
    assert r.status_code == 201, r.text
    assert (await f.gw.consent(CUSTOMER)).status_code == 200
    return int(r.json()["id"])


async def test_on_demand_reads_end_to_end(tmp_path: Path, store_url: str | None) -> None:  # noqa: F811
    receiver, receivers = Receiver(), Receivers()
    try:
        url = await receivers.start(receiver)
        async with running_field(tmp_path / "d", store_url, usage={"on_demand_reads_per_tdsp_per_day": 2}) as f:
            gw = f.gw
            _, token = await gw.new_party("Watts", "123456789")
            _, other = await gw.new_party("Snoop", "987654321")
            me, them = gw.auth(token), gw.auth(other)
            r = await gw.client.post("/v1/webhooks", headers=me, json={"url": url})
            assert r.status_code == 201, r.text
            agreement = await _agreement(f, token, "oncor")
            oncor = f.esi("oncor")

            # Asked, stored pending, read by the worker: the register the simulated meter gives.
            r = await gw.client.post(f"/v1/premises/{oncor}/meter-reads", headers=me)
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "pending" and r.json()["esi_id"] == oncor
            assert r.json()["agreement_id"] == agreement
            assert r.headers["location"] == f"/v1/meter-reads/{r.json()['id']}"
            first = r.json()["id"]
            done = await _until_done(f, me, first)
            meter = f.field.meter(oncor).register_read()  # the field's clock has not moved since
            assert done["status"] == "completed" and done["reason"] is None, done
            assert done["read"]["delivered_wh"] == meter.delivered_wh > 0
            assert done["read"]["demand_w"] == meter.demand_w
            assert datetime.fromisoformat(done["read"]["read_at"]) == datetime.fromtimestamp(meter.at, UTC)

            # The second party: refused as for an unknown premise, and blind to the first's read.
            r = await gw.client.post(f"/v1/premises/{oncor}/meter-reads", headers=them)
            assert r.status_code == 404 and r.json()["code"] == "unknown_premise", r.text
            r = await gw.client.get(f"/v1/meter-reads/{first}", headers=them)
            assert r.status_code == 404 and r.json()["code"] == "unknown_meter_read", r.text
            assert (await gw.client.get(f"/v1/meter-reads/{first}", headers=gw.op)).status_code == 200
            assert (await gw.client.get("/v1/meter-reads/99999", headers=me)).status_code == 404
            assert not [e for e in await _feed(gw.client, them) if e["type"].startswith("meter_read.")]

            # A retry with the same Idempotency-Key is the first answer: no second read, no count.
            key = {**me, "Idempotency-Key": "odr-retry-1"}
            a = await gw.client.post(f"/v1/premises/{oncor}/meter-reads", headers=key)
            b = await gw.client.post(f"/v1/premises/{oncor}/meter-reads", headers=key)
            assert a.status_code == b.status_code == 202 and a.json()["id"] == b.json()["id"], (a.text, b.text)
            assert b.headers.get("idempotent-replayed") == "true"
            await _until_done(f, me, a.json()["id"])

            # Oncor's two reads of the day are used: refused, typed, nothing stored.
            day = gw.clock.now().astimezone(CENTRAL).date()
            assert await gw.store.meter_reads_used("oncor", day.isoformat()) == 2
            r = await gw.client.post(f"/v1/premises/{oncor}/meter-reads", headers=me)
            assert r.status_code == 429, r.text
            problem = r.json()
            assert problem["code"] == "meter_read_quota_exceeded" and problem["type"].endswith(
                "#meter_read_quota_exceeded")
            assert "oncor" in problem["detail"] and "2 a day" in problem["detail"]
            (error,) = problem["errors"]
            assert (error["field"], error["value"], error["limit"]) == ("tdsp", "oncor", 2)
            resets = day + timedelta(days=1)
            assert datetime(resets.year, resets.month, resets.day, tzinfo=CENTRAL).isoformat() in error["message"]
            assert 0 < int(r.headers["retry-after"]) <= 25 * 3600
            assert await gw.store.meter_reads_used("oncor", day.isoformat()) == 2
            assert await gw.store.get_meter_read(a.json()["id"] + 1) is None  # the refusal stored no read

            # Another TDSP counts on its own: a dark meter fails "unreachable" (and the event says so).
            tnmp = f.esi("tnmp")
            await _agreement(f, token, "tnmp", mode="one_time")  # any Energy Data agreement in force
            f.field.meter(tnmp).reachable = False
            r = await gw.client.post(f"/v1/premises/{tnmp}/meter-reads", headers=me)
            assert r.status_code == 202, r.text
            dark = await _until_done(f, me, r.json()["id"])
            assert (dark["status"], dark["reason"], dark["read"]) == ("failed", "unreachable", None)
            assert "unreachable" in dark["detail"]

            # A route without the operation (AEP North's, written before it): failed, not_supported.
            r = await gw.client.post(f"/v1/premises/{f.esi('aep_north')}/meter-reads", headers=gw.op)
            assert r.status_code == 202, r.text
            legacy = await _until_done(f, gw.op, r.json()["id"])
            assert (legacy["status"], legacy["reason"]) == ("failed", "not_supported")
            assert "legacy-headend" in legacy["detail"]

            # A continuous agreement: the ingestion run announces the new intervals once.
            f.advance(timedelta(hours=1, minutes=1))
            run = await f.ingest()
            assert run["reads"] > 0, run
            assert (await f.ingest())["reads"] == 0
            feed = [e["event"] for e in await _feed(gw.client, me)]
            available = [e for e in feed if e["type"] == "usage.available"]
            assert len(available) == 1, available  # the one-time agreement's data is not announced
            (event,) = available
            assert event["agreement_id"] == agreement and event["esi_ids"] == [oncor] and event["premises"] == 1
            assert datetime.fromisoformat(event["from"]) < datetime.fromisoformat(event["to"]) <= gw.clock.now()
            assert event["reads"] >= 4

            # Events on the webhook, as in the feed; the catalogue's examples have their shape.
            by_type = {e["type"]: e for e in feed}
            assert {"meter_read.completed", "meter_read.failed", "usage.available"} <= set(by_type)
            completed = [e for e in feed if e["type"] == "meter_read.completed"]
            assert completed[0]["meter_read_id"] == first and completed[0]["read"] == done["read"]

            async def sent() -> bool:
                return {e["id"] for e in feed} <= receiver.ids()
            for _ in range(200):
                if await sent():
                    break
                await asyncio.sleep(0.05)
            assert await sent(), "the events did not reach the webhook"
            # An ended agreement grants nothing: refused as a foreign premise is (before the cap).
            r = await gw.client.post(f"/v1/agreements/{agreement}/terminate", headers=me)
            assert r.status_code == 200, r.text
            r = await gw.client.post(f"/v1/premises/{oncor}/meter-reads", headers=me)
            assert r.status_code == 404 and r.json()["code"] == "unknown_premise", r.text
            examples = _catalogue()
            assert set(examples) >= CHECKED_HERE
            for kind in CHECKED_HERE:
                assert _shape_differences(examples[kind], by_type[kind]) == [], kind
    finally:
        await receivers.stop()


@pytest.mark.parametrize("limit", [0, -1])
def test_the_cap_is_validated(tmp_path: Path, limit: int) -> None:
    from gateway.config import ConfigError
    from sandbox.local_gateway import gateway_config
    with pytest.raises(ConfigError, match="on_demand_reads_per_tdsp_per_day") as info:
        gateway_config(tmp_path, usage={"on_demand_reads_per_tdsp_per_day": limit})
    assert str(limit) in str(info.value)


class CountingRoute(SimulatedRoute):
    """The simulated route, keeping the meters it read on demand (which instance read what)."""

    def __init__(self, field: Any) -> None:
        super().__init__(field)
        self.read: list[str] = []

    async def read_meter(self, esi_id: str) -> MeterRead:
        self.read.append(esi_id)
        await asyncio.sleep(0.02)  # a read takes a moment: the other instance polls meanwhile
        return await super().read_meter(esi_id)


async def test_two_instances_read_each_meter_once(tmp_path: Path, migrated_pg_url: str) -> None:
    """Two gateways on one PostgreSQL database, each with its worker: every read is taken by one."""
    clock = ManualClock()
    vclock = VirtualClock(start=clock.now().timestamp(), seed=3)
    items = premises(1)
    field, _devices = build_field(vclock, items)
    gateways: list[tuple[Any, Any, Store, CountingRoute]] = []
    try:
        for name in ("a", "b"):
            config = gateway_config(tmp_path / name, storage={"url": migrated_pg_url})
            config.data_dir.mkdir(parents=True)
            store = await open_test_store(config)
            route = CountingRoute(field)
            app = create_app(config, store=store, clock=clock, run_timers=False, routes=RouteSet(route))
            server, task, port = await start_server(app)
            gateways.append((server, task, store, route))
            config.server.public_url = f"http://127.0.0.1:{port}"
        store = gateways[0][2]
        _cred, op_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
        urls = [f"http://127.0.0.1:{g[0].servers[0].sockets[0].getsockname()[1]}" for g in gateways]
        async with httpx.AsyncClient(timeout=30) as client:
            op = {"Authorization": f"Bearer {op_token}"}
            r = await client.post(f"{urls[0]}/v1/premises/import", headers={**op, "Content-Type": "text/csv"},
                                  content=premises_csv(items, CUSTOMER))
            assert r.status_code < 300, r.text
            asked = []
            for i in range(16):  # alternately through both instances: both workers are poked
                esi = items[i % len(items)].esi_id
                r = await client.post(f"{urls[i % 2]}/v1/premises/{esi}/meter-reads", headers=op)
                assert r.status_code == 202, r.text
                asked.append(r.json()["id"])
            deadline = time.monotonic() + 15
            while True:
                states = [(await client.get(f"{urls[0]}/v1/meter-reads/{i}", headers=op)).json()["status"]
                          for i in asked]
                if "pending" not in states or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        assert states == ["completed"] * 16
        a, b = gateways[0][3].read, gateways[1][3].read
        print(f"instance a read {len(a)}, b read {len(b)}")
        assert len(a) + len(b) == 16, (a, b)  # each read taken by one instance, once
        for read_id in asked:
            stored = await store.get_meter_read(read_id)
            assert stored is not None and stored.attempts == 1
    finally:
        for server, task, other_store, _route in gateways:
            await stop_server(server, task)
            await other_store.close()
