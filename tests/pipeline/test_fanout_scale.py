"""Fan-out at scale, in small: pages expanded by one INSERT … SELECT and dispatched set-based must
reach exactly the premises the party may reach (each once, with its meter's SE version and frame),
list the ones excluded, and leave the same history (transition, frame log) as a single request.
Each runs on SQLite and on the real PostgreSQL (whose planner reads the page query its own way)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ams_adapters.contract import HanOperation, MeterCapabilities, RouteCapabilities, SubmitOutcome, SubmitResult
from ams_adapters.se_frames import operation_frame
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.domain.model import AgreementKind, Role, Scope
from gateway.domain.records import Principal
from gateway.pipeline.dispatcher import Dispatcher, RouteSet
from gateway.pipeline.requests import PriceRequest, TextRequest
from gateway.pipeline.service import RequestService
from gateway.store import fanout as fanout_sql
from gateway.store import han_requests as requests_sql
from gateway.store.schema import (
    agreement_premises,
    agreements,
    han_deliveries,
    han_frame_log,
    han_requests,
    han_transitions,
    parties,
    premises,
)
from gateway.store.store import Store, open_store
from zigbee_se import SEVersion


class RecordingRoute:
    """Accepts everything and keeps every operation it is handed."""

    def __init__(self) -> None:
        self._caps = RouteCapabilities(name="recording", batch_size=25, rate_limit_per_s=1e6)
        self.ops: list[HanOperation] = []
        self.mappings: list[int] = []  # distinct fields mappings per batch

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
        raise NotImplementedError("the recording route provisions nothing")

    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        self.ops.extend(batch)
        self.mappings.append(len({id(op.fields) for op in batch}))
        return [SubmitResult(op.outbound_id, SubmitOutcome.ACCEPTED) for op in batch]

    async def events(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None


VERSIONS = ("1.0", "1.1", "1.2", None)  # None: unknown, the default (1.1) applies


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL: a SQLite file, or a fresh PostgreSQL database (dropped afterwards)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"
    url: str = request.getfixturevalue("migrated_pg_url")
    return url


async def _setup(db_url: str, n: int) -> tuple[Store, list[str]]:
    """Party 1 reaches premises 0..n-1 except one inactive premise; party 2 (no price scope)
    reaches all; premise n-1 has two agreements of party 1 (it must still get one delivery)."""
    store = await open_store(db_url)
    now = datetime.now(UTC)
    esis = [f"1044372{i:010d}" for i in range(n)]
    async with store.engine.begin() as conn:
        for p in (1, 2):
            await conn.execute(parties.insert().values(id=p, name=f"P{p}", duns=f"{p:09d}", contact_email="p@p.test",
                                                       status="active", created_at=now))
        for aid, party, scopes in ((1, 1, "text,price"), (2, 2, "text"), (3, 1, "price")):
            await conn.execute(agreements.insert().values(
                id=aid, party_id=party, kind="in_home_device_services", scopes=scopes, customer_email="c@c.test",
                duration_months=12, state="active", created_at=now, updated_at=now, invitation_expires_at=now,
                resend_count=0, accepted_at=now, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=30),
                reminders_sent=0))
        await conn.execute(premises.insert(), [{
            "esi_id": e, "tdsp": "oncor", "meter_number": f"M{i}", "customer_email": "c@c.test", "rep": None,
            "premise_class": "residential", "se_version": VERSIONS[i % 4], "enhanced_meter": False,
            "status": "inactive" if i == 7 else "active", "created_at": now, "updated_at": now}
            for i, e in enumerate(esis)])
        links = [{"agreement_id": a, "esi_id": e, "meter_number": f"M{i}"} for a in (1, 2) for i, e in enumerate(esis)]
        links.append({"agreement_id": 3, "esi_id": esis[-1], "meter_number": "x"})
        await conn.execute(agreement_premises.insert(), links)
    return store, esis


async def _run(store: Store, route: RecordingRoute, page: int) -> Dispatcher:
    cfg = parse_config({"pipeline": {"batch_size": 60, "fanout_page": page}}, env={}).pipeline
    return Dispatcher(store, RouteSet(route), cfg, ManualClock())


async def test_price_fanout_with_acknowledgement_pages_in_sql(db_url: str) -> None:
    store, esis = await _setup(db_url, 203)
    route = RecordingRoute()
    dispatcher = await _run(store, route, page=40)
    service = RequestService(store, dispatcher.config)
    clock = dispatcher.clock
    try:
        accepted = await service.submit(Principal(Role.THIRD_PARTY, party_id=1), PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1190", acknowledgement=True), clock.now())
        while await dispatcher.run_once():
            pass
        reachable = {e: VERSIONS[i % 4] or "1.1" for i, e in enumerate(esis) if i != 7}
        wanted = {e: v for e, v in reachable.items() if v != "1.0"}  # SE 1.0 carries no acknowledgement
        assert sorted(op.esi_id for op in route.ops) == sorted(wanted)  # each once
        async with store.engine.connect() as conn:
            request = (await conn.execute(han_requests.select().where(
                han_requests.c.id == accepted.request_id))).one()
            rows = (await conn.execute(sa.select(
                han_deliveries.c.id, han_deliveries.c.esi_id, han_deliveries.c.se_version, han_deliveries.c.state,
                han_deliveries.c.agreement_id, han_deliveries.c.fields, han_deliveries.c.frame).where(
                han_deliveries.c.request_id == accepted.request_id))).all()
            transitions = (await conn.execute(sa.select(han_transitions.c.delivery_id, han_transitions.c.state).where(
                han_transitions.c.delivery_id.in_([r.id for r in rows])))).all()
            logged = (await conn.execute(sa.select(han_frame_log.c.id).where(
                han_frame_log.c.request_id == accepted.request_id))).all()
            # The audit trail of what was handed to the route (docs/pipeline.md "Audit"): the row
            # itself, stamped when the route took it.
            sent = (await conn.execute(sa.select(
                han_deliveries.c.id, han_deliveries.c.esi_id, han_deliveries.c.frame, han_deliveries.c.agreement_id,
                han_deliveries.c.submitted_at).where(han_deliveries.c.request_id == accepted.request_id))).all()
        items = await requests_sql.list_deliveries(store.engine, accepted.request_id, after=0, limit=1000)
        assert request.fanout_after is None and request.state == "accepted"
        assert request.targeted == len(wanted) == len(rows)
        excluded = json.loads(request.excluded)
        assert sorted(x["esi_id"] for x in excluded) == sorted(e for e, v in reachable.items() if v == "1.0")
        assert all(x["reason"].startswith("meter_capability") for x in excluded)
        assert {r.esi_id: r.se_version for r in rows} == wanted
        assert {r.state for r in rows} == {"submitted"}
        assert {r.esi_id: r.agreement_id for r in rows}[esis[-1]] == 1  # two agreements: one delivery
        assert all(r.fields is None and r.frame is None for r in rows)  # the request's command, stored once
        stored = json.loads(request.command)
        assert "frames" not in stored  # no frame stored: a route that sends frames encodes the fields
        assert all(op.fields == stored["fields"] for op in route.ops)
        # One fields mapping per request and batch: a frame route encodes once per SE version, not per premise.
        assert set(route.mappings) == {1}
        frames = {op.se_version: operation_frame(op) for op in route.ops}
        assert set(frames) == {SEVersion.V1_1, SEVersion.V1_2}  # SE 1.0 is excluded (acknowledgement)
        assert all(frame[1] == stored["fields"]["issuer_event_id"] & 0xFF for frame in frames.values())  # TSN
        # One history entry per delivery, `submitted` at the time its route took it, read from the
        # row: no transition or frame-log row written per premise.
        assert transitions == [] and logged == []
        assert sorted((i.row.id, [(h.state, h.eui64) for h in i.history]) for i in items) == sorted(
            (r.id, [("submitted", None)]) for r in rows)
        assert {i.history[0].at for i in items} == {s.submitted_at for s in sent} and None not in {
            s.submitted_at for s in sent}
        assert {f for _d, _e, f, _a, _s in sent} == {None} and {a for *_x, a, _s in sent} == {1}
    finally:
        await store.close()


async def test_text_fanout_reaches_only_my_scoped_premises(db_url: str) -> None:
    """A text of party 2 (text scope only on agreement 2): every active premise, pages of 64."""
    store, esis = await _setup(db_url, 130)
    route = RecordingRoute()
    dispatcher = await _run(store, route, page=64)
    service = RequestService(store, dispatcher.config)
    try:
        accepted = await service.submit(Principal(Role.THIRD_PARTY, party_id=2), TextRequest(
            kind="text", all_premises=True, text="hello"), dispatcher.clock.now())
        while await dispatcher.run_once():
            pass
        assert sorted(op.esi_id for op in route.ops) == [e for i, e in enumerate(esis) if i != 7]
        async with store.engine.connect() as conn:
            targeted = (await conn.execute(sa.select(han_requests.c.targeted).where(
                han_requests.c.id == accepted.request_id))).scalar()
        assert targeted == 129
        # party 2 has no price scope: a price fan-out of it reaches nothing
        price = await service.submit(Principal(Role.THIRD_PARTY, party_id=2), PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1"), dispatcher.clock.now())
        while await dispatcher.run_once():
            pass
        async with store.engine.connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).where(
                han_deliveries.c.request_id == price.request_id))).scalar()
        assert count == 0 and len(route.ops) == 129
    finally:
        await store.close()


async def test_price_fanout_with_a_block_period_leaves_se10_meters_out(db_url: str) -> None:
    """SE 1.0 has no PublishBlockPeriod: a fan-out price with a block period (no acknowledgement
    asked) reaches neither its price nor its block period to SE 1.0 meters, as for named premises,
    and each other meter's block period encodes in its own SE version's layout."""
    store, esis = await _setup(db_url, 40)
    route = RecordingRoute()
    dispatcher = await _run(store, route, page=16)
    service = RequestService(store, dispatcher.config)
    try:
        accepted = await service.submit(Principal(Role.THIRD_PARTY, party_id=1), PriceRequest(
            kind="price", all_premises=True, provider_id=1, price="0.1190", number_of_tiers=2,
            block_period={"duration_minutes": 600, "number_of_block_thresholds": 3}), dispatcher.clock.now())
        assert accepted.block_period_request_id is not None
        while await dispatcher.run_once():
            pass
        wanted = sorted(e for i, e in enumerate(esis) if i != 7 and VERSIONS[i % 4] != "1.0")
        by_command: dict[str, list[HanOperation]] = {}
        for op in route.ops:
            by_command.setdefault(op.command, []).append(op)
        assert sorted(op.esi_id for op in by_command["publish_price"]) == wanted
        blocks = by_command["publish_block_period"]
        assert sorted(op.esi_id for op in blocks) == wanted
        sizes = {op.se_version: len(operation_frame(op)) for op in blocks}
        assert sizes == {SEVersion.V1_1: 3 + 17, SEVersion.V1_2: 3 + 19}
        async with store.engine.connect() as conn:
            excluded = (await conn.execute(sa.select(han_requests.c.excluded).where(
                han_requests.c.id == accepted.block_period_request_id))).scalar_one()
        assert {x["reason"] for x in json.loads(excluded)} == {
            "meter_capability: SE 1.0 meters carry no block periods (PublishBlockPeriod is SE 1.1)"}
    finally:
        await store.close()


async def test_a_page_reads_only_its_own_premises_on_postgresql(migrated_pg_url: str) -> None:
    """A fan-out page near the end of 3,000 premises reads about a page of premises on PostgreSQL,
    not every premise before its cursor (what made a million-premise fan-out quadratic), with the
    planner's statistics missing (right after an import) and present. Counted by PostgreSQL itself
    (`pg_stat_xact_user_tables`: rows this transaction read from `premises`)."""
    store, esis = await _setup(migrated_pg_url, 3000)
    page = 100
    reads = sa.text("SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
                    "WHERE relname = 'premises'")
    try:
        accepted = await RequestService(store, (await _run(store, RecordingRoute(), page)).config).submit(
            Principal(Role.THIRD_PARTY, party_id=1), PriceRequest(
                kind="price", all_premises=True, provider_id=1, price="0.1"), datetime.now(UTC))
        for analyzed in (False, True):
            if analyzed:
                async with store.engine.begin() as conn:
                    await conn.execute(sa.text("ANALYZE"))
            async with store.engine.connect() as conn, conn.begin() as tx:
                scope: dict[str, Any] = {"party_id": 1, "kind": AgreementKind.IN_HOME_DEVICE_SERVICES,
                                         "scope": Scope.PRICE, "now": datetime.now(UTC), "after": esis[-2 * page]}
                before = (await conn.execute(reads)).scalar() or 0
                last, count = await fanout_sql.page_end(conn, **scope, limit=page)
                inserted = await fanout_sql.insert_page_deliveries(
                    conn, **scope, request_id=accepted.request_id, se_id=1, last=last, limit=None,
                    default_version="1.1", cluster_id=0x0700, command="publish_price",
                    expires_at=datetime.now(UTC) + timedelta(hours=1))
                read = ((await conn.execute(reads)).scalar() or 0) - before
                await tx.rollback()
            assert (count, inserted, last) == (page, page, esis[-page]), analyzed
            # A few lookups per premise of the page (its end, its rows), not the 2,800 premises
            # before the cursor.
            assert read <= 5 * page, (analyzed, read)
    finally:
        await store.close()
