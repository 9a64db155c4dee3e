"""A meter gets its deliveries in id order (so its SE message ids in the order they were given)
even when several gateway instances claim the queue (issue 14): a premise's delivery is claimed
only while no earlier one of that premise is still queued — claimed by another instance and not
yet recorded, or waiting for its retry.

Two claimers (two stores on one PostgreSQL database, each with its own engine and pool, as two
`hangw serve` processes have) drain the queue at once as dispatchers do: claim a pass
(`deliveries.read_due` with a lease), hand the rows to "the route" after a random pause, record
them `submitted`. What the route was handed, in order, is logged here, outside the claimers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.store import deliveries
from gateway.store.schema import han_deliveries, han_requests
from gateway.store.store import Store, open_store

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
LEASE = timedelta(seconds=60)
PREMISES, PER_PREMISE = 3, 8  # few premises: each pass of a claimer meets the others' premises


@pytest.fixture
async def two(migrated_pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    here = await open_store(migrated_pg_url)
    other = await open_store(migrated_pg_url, migrate_to=None)
    try:
        yield here, other
    finally:
        await other.close()
        await here.close()


async def _queue(store: Store, rows: list[tuple[str, int]], at: datetime = NOW) -> list[int]:
    """Queued deliveries (premise, party), inserted in this order: their ids."""
    async with store.engine.begin() as conn:
        rid = (await conn.execute(han_requests.insert().values(
            kind="text", body="{}", target_all=False, targeted=0, excluded="[]", state="accepted",
            created_at=at).returning(han_requests.c.id))).scalar_one()
        await deliveries.insert(conn, [{
            "request_id": rid, "party_id": party, "esi_id": esi, "agreement_id": None, "se_id": n,
            "se_version": "1.1", "cluster_id": 0x0703, "command": "display_message", "fields": "{}",
            "state": "queued", "attempts": 0, "next_attempt_at": at, "expires_at": at + timedelta(hours=2),
            "created_at": at, "updated_at": at, "target_eui64": None} for n, (esi, party) in enumerate(rows)])
        return list((await conn.execute(sa.select(han_deliveries.c.id).where(
            han_deliveries.c.request_id == rid).order_by(han_deliveries.c.id))).scalars())


async def test_two_claimers_hand_each_premises_deliveries_to_the_route_in_id_order(
        two: tuple[Store, Store]) -> None:
    # Interleaved premises, two parties (each claim takes a share of each party's rows).
    rows = [(f"1044372{p:010d}", 1 + (p + k) % 2) for k in range(PER_PREMISE) for p in range(PREMISES)]
    ids = await _queue(two[0], rows)
    premise_of = dict(zip(ids, (esi for esi, _ in rows), strict=True))
    handed: list[int] = []  # what the route got, in order
    in_flight: dict[str, int] = {}  # premise -> its delivery claimed and not yet recorded
    rng = random.Random(14)

    async def claimer(store: Store) -> None:
        idle = 0
        while idle < 3:
            claimed = await deliveries.read_due(store.engine, NOW, 5, lease=LEASE)
            if not claimed:
                idle += 1
                await asyncio.sleep(0.02)
                continue
            idle = 0
            for row in claimed:  # never two of one premise claimed and unfinished at once
                assert row.esi_id not in in_flight, (row.id, in_flight)
                in_flight[row.esi_id] = row.id
            await asyncio.sleep(rng.random() * 0.03)  # the route takes its time
            handed.extend(r.id for r in claimed)
            async with store.engine.begin() as conn:
                await deliveries.mark_submitted(conn, claimed, NOW)
            for row in claimed:
                del in_flight[row.esi_id]

    await asyncio.gather(claimer(two[0]), claimer(two[1]))
    assert sorted(handed) == ids  # each once
    for esi in {e for e, _ in rows}:
        mine = [i for i in handed if premise_of[i] == esi]
        assert mine == sorted(mine), (esi, mine)


async def test_a_later_delivery_waits_while_an_earlier_one_of_its_premise_is_claimed_or_retried(
        two: tuple[Store, Store]) -> None:
    here, other = two
    first, second, elsewhere = await _queue(here, [("10443720000000001", 1), ("10443720000000001", 1),
                                                   ("10443720000000002", 1)])
    # One claim takes the premise's first delivery only (and the other premise's).
    assert {r.id for r in await deliveries.read_due(here.engine, NOW, 10, lease=LEASE)} == {first, elsewhere}
    # The other instance does not take the second while the first is claimed and unfinished.
    assert await deliveries.read_due(other.engine, NOW, 10, lease=LEASE) == []
    # The first is handed back for a retry later: the second still waits behind it.
    async with here.engine.begin() as conn:
        await conn.execute(han_deliveries.update().where(han_deliveries.c.id == first).values(
            next_attempt_at=NOW + timedelta(seconds=30)))
    assert await deliveries.read_due(other.engine, NOW, 10, lease=LEASE) == []
    # Once the first is recorded (the route took it), the second goes.
    retried = await deliveries.read_due(other.engine, NOW + timedelta(seconds=31), 10, lease=LEASE)
    assert [r.id for r in retried] == [first]
    async with other.engine.begin() as conn:
        await deliveries.mark_submitted(conn, retried, NOW)
    assert [r.id for r in await deliveries.read_due(here.engine, NOW + timedelta(seconds=31), 10,
                                                   lease=LEASE)] == [second]
