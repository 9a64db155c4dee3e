"""The dispatcher against a scripted route (a whole peer implementing the route contract):
retries with backoff honouring retry_after_s, rejections, route errors, fair shares between
parties while a fan-out is being dispatched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ams_adapters.contract import (
    HanOperation,
    MeterCapabilities,
    RouteCapabilities,
    SubmitOutcome,
    SubmitResult,
)
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.domain.model import Role
from gateway.domain.records import Principal
from gateway.pipeline.dispatcher import Dispatcher, RouteSet
from gateway.pipeline.requests import PriceRequest, TextRequest
from gateway.pipeline.service import RequestService
from gateway.store.schema import agreement_premises, agreements, han_deliveries, parties, premises
from gateway.store.store import Store, open_store


class ScriptedRoute:
    """Answers by ESI ID: 'busy' premises get RETRY_LATER twice, 'bad' ones REJECTED; the first
    batch raises (a head-end outage). Records every batch."""

    def __init__(self, busy: set[str], bad: set[str], batch_size: int = 10) -> None:
        self._caps = RouteCapabilities(name="scripted", batch_size=batch_size, rate_limit_per_s=1e6)
        self.busy, self.bad = busy, bad
        self.batches: list[list[HanOperation]] = []
        self.tries: dict[str, int] = {}
        self.outage = True

    @property
    def capabilities(self) -> RouteCapabilities:
        return self._caps

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities:
        return MeterCapabilities()

    async def provision(self, request: Any) -> SubmitResult:
        raise NotImplementedError

    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        if self.outage:
            self.outage = False
            raise ConnectionError("head-end down")
        self.batches.append(list(batch))
        out = []
        for op in batch:
            n = self.tries[op.outbound_id] = self.tries.get(op.outbound_id, 0) + 1
            if op.esi_id in self.bad:
                out.append(SubmitResult(op.outbound_id, SubmitOutcome.REJECTED, reason="meter: unknown"))
            elif op.esi_id in self.busy and n <= 2:
                out.append(SubmitResult(op.outbound_id, SubmitOutcome.RETRY_LATER, retry_after_s=5.0))
            else:
                out.append(SubmitResult(op.outbound_id, SubmitOutcome.ACCEPTED, reference=f"ref-{op.outbound_id}"))
        return out

    async def events(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None


async def _setup(tmp_path: Path, n: int, parties_n: int = 2) -> tuple[Store, list[str]]:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    now = datetime.now(UTC)
    esis = [f"1044372{i:010d}" for i in range(n)]
    async with store.engine.begin() as conn:
        for p in range(1, parties_n + 1):
            await conn.execute(parties.insert().values(id=p, name=f"P{p}", duns=f"{p:09d}", contact_email="p@p.test",
                                                       status="active", created_at=now))
            await conn.execute(agreements.insert().values(
                id=p, party_id=p, kind="in_home_device_services", scopes="text,price,load_control",
                customer_email="c@c.test", duration_months=12, state="active", created_at=now, updated_at=now,
                invitation_expires_at=now, resend_count=0, accepted_at=now, starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(days=30), reminders_sent=0))
        await conn.execute(premises.insert(), [{
            "esi_id": e, "tdsp": "oncor", "meter_number": f"M{i}", "customer_email": "c@c.test", "rep": None,
            "premise_class": "residential", "se_version": "1.1", "enhanced_meter": False, "status": "active",
            "created_at": now, "updated_at": now} for i, e in enumerate(esis)])
        for p in range(1, parties_n + 1):
            await conn.execute(agreement_premises.insert(), [
                {"agreement_id": p, "esi_id": e, "meter_number": f"M{i}"} for i, e in enumerate(esis)])
    return store, esis


async def _states(store: Store) -> dict[str, str]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(han_deliveries.c.esi_id, han_deliveries.c.state))).all()
    return {str(e): str(s) for e, s in rows}


async def test_retries_rejections_and_outage(tmp_path: Path) -> None:
    store, esis = await _setup(tmp_path, 6)
    clock = ManualClock()
    cfg = parse_config({"pipeline": {"retry_base_seconds": 0.5}}, env={}).pipeline
    route = ScriptedRoute(busy={esis[1]}, bad={esis[2]})
    dispatcher = Dispatcher(store, RouteSet(route), cfg, clock)
    service = RequestService(store, cfg)
    try:
        for esi in esis[:4]:
            await service.submit(Principal(Role.THIRD_PARTY, party_id=1),
                                 TextRequest(kind="text", esi_ids=[esi], text="hi"), clock.now())
        await dispatcher.run_once()  # the outage: everything is retried later, nothing lost
        assert set((await _states(store)).values()) == {"queued"}
        for _ in range(4):
            clock.advance(timedelta(seconds=6))
            await dispatcher.run_once()
        states = await _states(store)
        assert states == {esis[0]: "submitted", esis[1]: "submitted", esis[2]: "failed", esis[3]: "submitted"}
        assert route.tries[next(o for o in route.tries if route.tries[o] == 3)] == 3  # busy: 2 x retry, then in
        async with store.engine.connect() as conn:
            busy = (await conn.execute(sa.select(han_deliveries.c.attempts).where(
                han_deliveries.c.esi_id == esis[1]))).scalar()
        assert busy == 3  # the outage and two RETRY_LATER answers
    finally:
        await store.close()


async def test_single_request_is_not_starved_by_a_fanout(tmp_path: Path) -> None:
    store, esis = await _setup(tmp_path, 300)
    clock = ManualClock()
    cfg = parse_config({"pipeline": {"batch_size": 20, "fanout_page": 100}}, env={}).pipeline
    route = ScriptedRoute(busy=set(), bad=set(), batch_size=20)
    route.outage = False
    dispatcher = Dispatcher(store, RouteSet(route), cfg, clock)
    service = RequestService(store, cfg)
    try:
        await service.submit(Principal(Role.THIRD_PARTY, party_id=1), PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1"), clock.now())
        for _ in range(3):
            await dispatcher.run_once()
        single = await service.submit(Principal(Role.THIRD_PARTY, party_id=2),
                                      TextRequest(kind="text", esi_ids=[esis[-1]], text="me too"), clock.now())
        await dispatcher.run_once()
        last_batch = route.batches[-1]
        assert any(op.esi_id == esis[-1] and op.command == "display_message" for op in last_batch)
        assert sum(1 for b in route.batches for op in b) < 300  # the fan-out was still going
        while await dispatcher.run_once():
            pass
        async with store.engine.connect() as conn:
            counts = dict((await conn.execute(sa.select(han_deliveries.c.request_id, sa.func.count()).group_by(
                han_deliveries.c.request_id))).all())
        assert counts == {1: 300, single.request_id: 1}
        assert len({op.outbound_id for b in route.batches for op in b}) == 301
    finally:
        await store.close()


async def test_incremental_sweep_withdraws_after_an_agreement_ends(tmp_path: Path) -> None:
    """The withdrawal sweep reads only agreements that ended since the previous sweep, yet still
    withdraws: a termination after several sweeps, then an agreement that simply runs out."""
    store, esis = await _setup(tmp_path, 30)
    clock = ManualClock()
    cfg = parse_config({"pipeline": {"batch_size": 100, "fanout_page": 100}}, env={}).pipeline
    route = ScriptedRoute(busy=set(), bad=set(), batch_size=50)
    route.outage = False
    dispatcher = Dispatcher(store, RouteSet(route), cfg, clock)
    service = RequestService(store, cfg)

    async def sweep() -> int:
        dispatcher._next_sweep = 0.0  # the sweep runs at most once a second: due now
        return await dispatcher.run_once()

    async def cancels(party: int) -> dict[str, str]:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(han_deliveries.c.esi_id, han_deliveries.c.state).where(
                han_deliveries.c.party_id == party, han_deliveries.c.command == "cancel_message"))).all()
        return {str(e): str(s) for e, s in rows}

    try:
        texts = {}
        for p in (1, 2):
            texts[p] = await service.submit(Principal(Role.THIRD_PARTY, party_id=p), TextRequest(
                kind="text", all_premises=True, text=f"from {p}", duration_minutes=600), clock.now())
        while await sweep():
            pass
        assert set((await _states(store)).values()) == {"submitted"}
        assert dispatcher._swept_at is not None and not dispatcher._ended  # nothing ended: nothing watched
        clock.advance(timedelta(minutes=5))
        await sweep()
        async with store.engine.begin() as conn:  # the customer terminates party 1's agreement
            await conn.execute(agreements.update().where(agreements.c.id == 1).values(
                state="terminated_by_customer", ended_at=clock.now(), updated_at=clock.now()))
        clock.advance(timedelta(seconds=2))
        while await sweep():
            pass
        assert await cancels(1) == dict.fromkeys(esis, "submitted")  # the SE cancel went to every premise
        assert await cancels(2) == {}
        async with store.engine.connect() as conn:
            withdrawn = (await conn.execute(sa.select(sa.func.count()).where(
                han_deliveries.c.request_id == texts[1].request_id, han_deliveries.c.state == "cancelled",
                han_deliveries.c.reason == "agreement ended: SE cancel sent"))).scalar()
        assert withdrawn == 30
        assert set(dispatcher._ended) == {1}  # watched a little longer, then forgotten
        clock.advance(timedelta(minutes=2))
        dispatcher._ended[1] = 0.0  # its watch is over
        await sweep()
        assert not dispatcher._ended
        # Party 2's agreement runs out (no one touched the row): found by its end time.
        async with store.engine.begin() as conn:
            await conn.execute(agreements.update().where(agreements.c.id == 2).values(
                ends_at=clock.now() + timedelta(minutes=1)))
        await sweep()
        assert await cancels(2) == {}
        clock.advance(timedelta(minutes=2))
        while await sweep():
            pass
        assert await cancels(2) == dict.fromkeys(esis, "submitted")
    finally:
        await store.close()
