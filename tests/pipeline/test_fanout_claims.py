"""Fan-out pages on PostgreSQL are inserted already claimed by the instance that expands them and
sent by it (gateway/store/fanout.py `insert_claimed_page`), not claimed a second time.
Two stores (two engines and pools) stand for two gateway instances on one database: every premise
is handed to a route exactly once, the pages are spread over both instances, and a page whose
instance died between the claim and the route's answer is sent by the other one when the lease
ends, not before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from ams_adapters.contract import HanOperation, SubmitResult
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.domain.model import Role
from gateway.domain.records import Principal
from gateway.pipeline.dispatcher import Dispatcher, RouteSet
from gateway.pipeline.requests import PriceRequest
from gateway.pipeline.service import RequestService
from gateway.store.schema import han_deliveries, han_requests
from gateway.store.store import Store, open_store
from tests.gateway.conftest import pg_url  # noqa: F401  (the fixture: a fresh database per test)
from tests.pipeline.test_fanout_scale import RecordingRoute, _setup

LEASE_S = 30.0


class SilentRoute(RecordingRoute):
    """Takes a batch and never answers: the instance holding it is as good as dead (its pass is
    cancelled below, so nothing of the route's answer is recorded)."""

    def __init__(self) -> None:
        super().__init__()
        self.took = asyncio.Event()

    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        self.ops.extend(batch)
        self.took.set()
        await asyncio.Event().wait()
        raise AssertionError("never answers")

    async def events(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None


def _dispatcher(store: Store, route: RecordingRoute, page: int, clock: ManualClock | None = None) -> Dispatcher:
    cfg = parse_config({"pipeline": {"batch_size": 50, "fanout_page": page, "claim_lease_seconds": LEASE_S}},
                       env={}).pipeline
    return Dispatcher(store, RouteSet(route), cfg, clock or ManualClock())


async def test_two_instances_share_a_fanout_page_by_page_and_hand_each_premise_once(
        pg_url: str) -> None:  # noqa: F811
    one, esis = await _setup(pg_url, 601)
    two = await open_store(pg_url)
    route_one, route_two = RecordingRoute(), RecordingRoute()
    a, b = _dispatcher(one, route_one, 40), _dispatcher(two, route_two, 40)
    try:
        accepted = await RequestService(one, a.config).submit(Principal(Role.THIRD_PARTY, party_id=1), PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1190"), a.clock.now())
        for _ in range(200):  # both instances' passes at the same moments
            worked = await asyncio.gather(a.run_once(), b.run_once())
            if not any(worked):
                break
        handed = [op.outbound_id for op in route_one.ops + route_two.ops]
        assert len(handed) == len(set(handed))  # nothing handed twice, by either instance
        reachable = sorted(e for i, e in enumerate(esis) if i != 7)  # premise 7 is inactive
        assert sorted(op.esi_id for op in route_one.ops + route_two.ops) == reachable
        # Each instance expanded (and sent) pages of its own.
        assert route_one.ops and route_two.ops
        async with one.engine.connect() as conn:
            states = dict((await conn.execute(sa.select(han_deliveries.c.state, sa.func.count()).where(
                han_deliveries.c.request_id == accepted.request_id).group_by(han_deliveries.c.state))).all())
            request = (await conn.execute(han_requests.select().where(
                han_requests.c.id == accepted.request_id))).one()
        assert states == {"submitted": len(reachable)}
        assert (request.state, request.targeted, request.fanout_after) == ("accepted", len(reachable), None)
    finally:
        await one.close()
        await two.close()


async def test_a_page_claimed_by_an_instance_that_died_is_sent_by_another_after_the_lease(
        pg_url: str) -> None:  # noqa: F811
    one, esis = await _setup(pg_url, 90)
    two = await open_store(pg_url)
    silent, route_two = SilentRoute(), RecordingRoute()
    clock_two = ManualClock()
    a, b = _dispatcher(one, silent, 500), _dispatcher(two, route_two, 500, clock_two)
    try:
        accepted = await RequestService(one, a.config).submit(Principal(Role.THIRD_PARTY, party_id=1), PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1190"), a.clock.now())
        await a.run_once()  # expands the one page: its rows are inserted claimed by `a`
        dying = asyncio.create_task(a.run_once())  # hands them to its route, which never answers
        await asyncio.wait_for(silent.took.wait(), 10)
        dying.cancel()  # killed before the route's answer was recorded
        await asyncio.gather(dying, return_exceptions=True)
        reachable = sorted(e for i, e in enumerate(esis) if i != 7)
        assert sorted(op.esi_id for op in silent.ops) == reachable
        # The other instance finds the fan-out expanded and its rows claimed: nothing to send.
        assert await b.run_once() == 0
        assert route_two.ops == []
        clock_two.advance(timedelta(seconds=LEASE_S - 5))
        await b.run_once()
        assert route_two.ops == []
        # The lease has ended: the rows are due again and sent once more under the same outbound
        # ids (what the route's idempotency absorbs), each once.
        clock_two.advance(timedelta(seconds=10))
        while await b.run_once():
            pass
        assert sorted(op.outbound_id for op in route_two.ops) == sorted(op.outbound_id for op in silent.ops)
        async with one.engine.connect() as conn:
            states = dict((await conn.execute(sa.select(han_deliveries.c.state, sa.func.count()).where(
                han_deliveries.c.request_id == accepted.request_id).group_by(han_deliveries.c.state))).all())
        assert states == {"submitted": len(reachable)}
        # Read back from the database, they are the same operations the dead instance held.
        assert ({op.outbound_id: (op.esi_id, op.se_version, op.fields) for op in route_two.ops}
                == {op.outbound_id: (op.esi_id, op.se_version, op.fields) for op in silent.ops})
    finally:
        await one.close()
        await two.close()


async def test_a_page_claimed_by_an_instance_that_stops_is_sent_by_another_at_once(
        pg_url: str) -> None:  # noqa: F811
    one, esis = await _setup(pg_url, 50)
    two = await open_store(pg_url)
    route_one, route_two = RecordingRoute(), RecordingRoute()
    a, b = _dispatcher(one, route_one, 500), _dispatcher(two, route_two, 500)
    try:
        await RequestService(one, a.config).submit(Principal(Role.THIRD_PARTY, party_id=1), PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1190"), a.clock.now())
        await a.run_once()  # expands the one page, claimed by `a`, not yet handed to its route
        await a.close()  # a graceful stop gives the unsent claims back
        while await b.run_once():
            pass
        assert route_one.ops == []
        assert sorted(op.esi_id for op in route_two.ops) == sorted(e for i, e in enumerate(esis) if i != 7)
    finally:
        await one.close()
        await two.close()


async def test_a_premise_with_an_earlier_delivery_still_queued_gets_the_new_page_row_after_it(
        pg_url: str) -> None:  # noqa: F811
    """A meter gets its deliveries in id order, fan-out pages included: while the first price's
    rows are held by an instance that died, a second price's page (expanded by the other instance)
    is inserted for those premises but not claimed; the premises get the first price, then the
    second, once the lease has ended."""
    one, esis = await _setup(pg_url, 30)
    two = await open_store(pg_url)
    silent, route_two = SilentRoute(), RecordingRoute()
    clock_two = ManualClock()
    a, b = _dispatcher(one, silent, 500), _dispatcher(two, route_two, 500, clock_two)
    party = Principal(Role.THIRD_PARTY, party_id=1)
    try:
        first = await RequestService(one, a.config).submit(party, PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1190"), a.clock.now())
        await a.run_once()  # the first price's page, claimed by `a`
        dying = asyncio.create_task(a.run_once())
        await asyncio.wait_for(silent.took.wait(), 10)
        dying.cancel()  # `a` dies holding the first price's rows, still queued
        await asyncio.gather(dying, return_exceptions=True)
        second = await RequestService(two, b.config).submit(party, PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.2290"), clock_two.now())
        while await b.run_once():  # expands the second price's page
            pass
        assert route_two.ops == []  # no premise gets the second price before the first
        async with two.engine.connect() as conn:
            queued = (await conn.execute(sa.select(sa.func.count()).where(
                han_deliveries.c.request_id == second.request_id, han_deliveries.c.state == "queued"))).scalar_one()
        reachable = sorted(e for i, e in enumerate(esis) if i != 7)
        assert queued == len(reachable)  # inserted all the same (the fan-out is expanded)
        clock_two.advance(timedelta(seconds=LEASE_S + 5))
        while await b.run_once():
            pass
        by_request: dict[str, list[int]] = {}
        for op in route_two.ops:
            by_request.setdefault(op.esi_id, []).append(int(op.outbound_id.removeprefix("hgw-")))
        async with two.engine.connect() as conn:
            request_of = dict((await conn.execute(sa.select(han_deliveries.c.id, han_deliveries.c.request_id).where(
                han_deliveries.c.request_id.in_([first.request_id, second.request_id])))).all())
        assert sorted(by_request) == reachable
        for esi, ids in by_request.items():
            assert [request_of[i] for i in ids] == [first.request_id, second.request_id], esi
    finally:
        await one.close()
        await two.close()
