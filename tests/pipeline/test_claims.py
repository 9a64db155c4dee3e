"""The delivery queue's claim on PostgreSQL, with two engines standing for two gateway instances
claiming at the same moment: no row is handed to both, none is left out, each party keeps its
share in every claim, and a claim that is never answered (its instance died) falls due again when
its lease ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store import deliveries
from gateway.store.schema import han_requests
from gateway.store.store import open_store

LEASE = timedelta(seconds=60)


async def test_two_instances_claim_disjoint_fair_batches_and_take_over_after_the_lease(
        migrated_pg_url: str) -> None:
    store = await open_store(migrated_pg_url)  # at head already (a copy of the migrated template)
    await store.close()
    now = datetime.now(UTC).replace(microsecond=0)
    one, two = create_async_engine(migrated_pg_url), create_async_engine(migrated_pg_url)
    try:
        async with one.begin() as conn:
            rid = (await conn.execute(han_requests.insert().values(
                kind="text", body="{}", target_all=False, targeted=0, excluded="[]", state="accepted",
                created_at=now).returning(han_requests.c.id))).scalar_one()
            # A big party (a fan-out) and a small one (single texts), all due now.
            await deliveries.insert(conn, [{
                "request_id": rid, "party_id": party, "esi_id": f"{party}{n:021d}", "agreement_id": None,
                "se_id": n, "se_version": "1.1", "cluster_id": 0x0703, "command": "display_message",
                "fields": "{}", "state": "queued", "attempts": 0, "next_attempt_at": now - timedelta(seconds=1),
                "expires_at": now + timedelta(hours=1), "created_at": now, "updated_at": now,
                "target_eui64": None} for party, count in ((1, 400), (2, 30)) for n in range(count)])
        seen: dict[int, int] = {}
        rounds = 0
        while True:
            a, b = await asyncio.gather(deliveries.read_due(one, now, 100, lease=LEASE),
                                        deliveries.read_due(two, now, 100, lease=LEASE))
            if not a and not b:
                break
            rounds += 1
            assert rounds < 20
            for batch in (a, b):
                assert len(batch) <= 100
                for r in batch:
                    seen[r.id] = seen.get(r.id, 0) + 1
            assert not {r.id for r in a} & {r.id for r in b}
            if rounds == 1:  # the small party is not starved by the big one, in either instance
                assert sum(r.party_id == 2 for r in a + b) == 30, [(len(a), len(b))]
        assert len(seen) == 430 and set(seen.values()) == {1}
        # Claimed and never answered: nothing is due until the lease ends, then all of it again.
        assert await deliveries.read_due(one, now + LEASE - timedelta(seconds=1), 1000) == []
        again = await deliveries.read_due(two, now + LEASE + timedelta(seconds=1), 1000, lease=LEASE)
        assert {r.id for r in again} == set(seen)
    finally:
        await one.dispose()
        await two.dispose()

