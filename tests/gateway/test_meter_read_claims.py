"""On-demand reads with two instances (two stores on one database, each with its own engine, as
two `hangw serve` processes have): each read is claimed by one instance, a dead instance's claim
is taken over after its lease and its late result dropped, and the per-TDSP daily cap holds when
both submit at the same moment. On PostgreSQL the claims and counts really race (FOR UPDATE SKIP
LOCKED, the quota row's lock); on SQLite the same calls work under its one writer. Also: a read
not taken in time fails `expired`, a premise no route reaches fails `unreachable`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ManualClock
from gateway.config import UsageConfig
from gateway.meter_reads import MeterReadService, MeterReadWorker, ReadQuotaExceeded
from gateway.pipeline.dispatcher import RouteSet
from gateway.store.meter_reads import COMPLETED, QuotaExhausted, StoredMeterRead
from gateway.store.store import Store, open_store
from tests.gateway.conftest import db_url, pg_url  # noqa: F401 (fixtures)

NOW = datetime(2026, 5, 1, 17, tzinfo=UTC)  # noon in Texas
DAY = "2026-05-01"
LEASE = timedelta(seconds=30)
ESI = "10443720000000001"


@pytest.fixture
async def two(db_url: str) -> AsyncIterator[tuple[Store, Store]]:  # noqa: F811
    here = await open_store(db_url)
    other = await open_store(db_url, migrate_to=None)
    try:
        yield here, other
    finally:
        await other.close()
        await here.close()


async def _submit(store: Store, *, limit: int = 100, day: str = DAY, tdsp: str = "oncor") -> StoredMeterRead:
    return await store.submit_meter_read(party_id=None, agreement_id=None, esi_id=ESI, tdsp=tdsp, day=day,
                                         limit=limit, now=NOW, expires_at=NOW + timedelta(hours=1))


async def test_each_read_is_claimed_once_and_taken_over_after_the_lease(two: tuple[Store, Store]) -> None:
    here, other = two
    ids = {(await _submit(here)).id for _ in range(12)}

    async def drain(store: Store) -> list[int]:
        got: list[int] = []
        while rows := await store.claim_meter_reads(NOW, LEASE, limit=2):
            got += [r.id for r in rows]
            for row in rows:
                assert await store.finish_meter_read(row, {"state": "failed", "reason": "unreachable"}, [])
        return got
    got = await asyncio.gather(drain(here), drain(other))
    flat = [i for ids_ in got for i in ids_]
    assert len(flat) == len(set(flat)) and set(flat) == ids, got  # each read claimed by one instance

    # A claim that is never finished (the instance died): nobody else takes it before the lease is
    # over; after, the other instance does, and the dead claimer's late result is dropped.
    read = await _submit(here)
    (mine,) = await here.claim_meter_reads(NOW, LEASE)
    assert mine.id == read.id and mine.attempts == 1
    assert await other.claim_meter_reads(NOW + LEASE - timedelta(seconds=1), LEASE) == []
    (theirs,) = await other.claim_meter_reads(NOW + LEASE + timedelta(seconds=1), LEASE)
    assert theirs.id == read.id and theirs.attempts == 2
    late = {"state": COMPLETED, "delivered_wh": 1, "read_at": NOW, "finished_at": NOW}
    assert not await here.finish_meter_read(mine, late, [])
    assert await other.finish_meter_read(theirs, {**late, "delivered_wh": 2}, [])
    stored = await here.get_meter_read(read.id)
    assert stored is not None and (stored.state, stored.delivered_wh) == (COMPLETED, 2)
    assert await here.claim_meter_reads(NOW + timedelta(hours=2), LEASE) == []  # done: never due again


async def test_the_daily_cap_holds_across_instances(two: tuple[Store, Store]) -> None:
    here, other = two

    async def one(store: Store) -> bool:
        try:
            await _submit(store, limit=5)
        except QuotaExhausted as exc:
            assert (exc.tdsp, exc.day, exc.limit) == ("oncor", DAY, 5)
            return False
        return True
    results = await asyncio.gather(*(one(here if i % 2 else other) for i in range(20)))
    assert sum(results) == 5
    assert await here.meter_reads_used("oncor", DAY) == 5
    # Only the accepted reads were stored: exactly 5 are due.
    assert len(await here.claim_meter_reads(NOW, LEASE, limit=50)) == 5
    # Another TDSP and the next day count on their own.
    await _submit(other, limit=5, tdsp="tnmp")
    await _submit(other, limit=5, day="2026-05-02")
    assert await other.meter_reads_used("tnmp", DAY) == 1 and await other.meter_reads_used("oncor", "2026-05-02") == 1


async def test_expired_and_unreachable_reads_fail_with_their_reason(db_url: str) -> None:  # noqa: F811
    store = await open_store(db_url)
    clock = ManualClock()
    config = UsageConfig(on_demand_read_expiry_seconds=60, on_demand_reads_per_tdsp_per_day=1)
    try:
        service = MeterReadService(store, config, clock)
        worker = MeterReadWorker(store, RouteSet(), config, clock)  # no route reaches any premise
        old = await service.submit(party_id=None, agreement_id=None, esi_id=ESI, tdsp="oncor")
        with pytest.raises(ReadQuotaExceeded) as info:  # the day's one read is used
            await service.submit(party_id=None, agreement_id=None, esi_id=ESI, tdsp="oncor")
        local_midnight = info.value.resets_at
        assert local_midnight.tzinfo is not None and (local_midnight.hour, local_midnight.minute) == (0, 0)
        assert str(local_midnight.tzinfo) == "America/Chicago" and local_midnight > clock.now()
        clock.advance(timedelta(seconds=61))  # no worker took it in time
        fresh = await service.submit(party_id=None, agreement_id=None, esi_id=ESI, tdsp="tnmp")
        assert await worker.run_once() == 2
        got_old, got_fresh = await store.get_meter_read(old.id), await store.get_meter_read(fresh.id)
        assert got_old is not None and (got_old.state, got_old.reason) == ("failed", "expired")
        assert got_fresh is not None and (got_fresh.state, got_fresh.reason) == ("failed", "unreachable")
        assert got_fresh.detail is not None and "no route" in got_fresh.detail
        assert await worker.run_once() == 0
    finally:
        await store.close()


async def test_a_graceful_stop_hands_its_reads_back(two: tuple[Store, Store]) -> None:
    """Claimed, not finished, handed back: due again at once for the other instance (not after
    the lease); a finished read is not handed back."""
    here, other = two
    first, second = await _submit(here), await _submit(here)
    claimed = await here.claim_meter_reads(NOW, LEASE)
    assert [r.id for r in claimed] == [first.id, second.id]
    assert await here.finish_meter_read(claimed[1], {"state": COMPLETED, "delivered_wh": 5}, [])
    assert await here.release_meter_reads({r.id: r.attempts for r in claimed}, NOW) == 1
    (taken,) = await other.claim_meter_reads(NOW, LEASE)
    assert (taken.id, taken.attempts) == (first.id, 2)
