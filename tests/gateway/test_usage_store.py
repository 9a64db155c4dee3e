"""The usage store on SQLite and on the real PostgreSQL: re-sent reads are stored once (the newer
value and quality win), keyset pages, and what is stored for finding gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.store.store import open_store
from gateway.store.usage import StoredRead

ESI = "10443720000000001"
T0 = datetime(2026, 7, 1, 5, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    url: str = request.getfixturevalue("migrated_pg_url")
    return url


async def test_re_sent_reads_are_stored_once_and_replace_the_old_value(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        now = datetime.now(UTC)
        rows = [StoredRead(ESI, "consumption", T0 + timedelta(minutes=15 * i), 900, 100 + i, "estimated",
                           "simulated", now) for i in range(9000)]
        rows += [StoredRead(ESI, "generation", T0 + timedelta(minutes=15 * i), 900, 7, "actual", "simulated", now)
                 for i in range(4)]
        assert await store.upsert_usage_reads(rows) == 9004
        revised = [r._replace(value_wh=r.value_wh + 1, quality="actual") for r in rows[:10]]
        await store.upsert_usage_reads(revised + rows[5000:5010])  # a revision, and a plain re-send
        assert await store.count_usage_reads(ESI) == 9004
        page = await store.usage_page(ESI, T0, T0 + timedelta(hours=1), limit=5)
        assert [(r.interval_start, r.channel, r.value_wh, r.quality) for r in page] == [
            (T0, "consumption", 101, "actual"), (T0, "generation", 7, "actual"),
            (T0 + timedelta(minutes=15), "consumption", 102, "actual"),
            (T0 + timedelta(minutes=15), "generation", 7, "actual"),
            (T0 + timedelta(minutes=30), "consumption", 103, "actual")]
        rest = await store.usage_page(ESI, T0, T0 + timedelta(hours=1),
                                      after=(page[-1].interval_start, page[-1].channel))
        assert [(r.interval_start, r.channel) for r in rest] == [
            (T0 + timedelta(minutes=30), "generation"), (T0 + timedelta(minutes=45), "consumption"),
            (T0 + timedelta(minutes=45), "generation")]
        starts = await store.usage_starts(ESI, "consumption", T0, T0 + timedelta(days=1))
        assert starts == [T0 + timedelta(minutes=15 * i) for i in range(96)]
        assert await store.usage_page("10443720000000002", T0, T0 + timedelta(days=1)) == []
    finally:
        await store.close()


async def test_gaps_are_found_by_counting_halves(store_url: str) -> None:
    """A month with holes of several sizes (one across the halves' boundary): the gaps the
    ingestion refetches are exactly the missing stretches."""
    from gateway.clock import ManualClock
    from gateway.usage import UsageService

    store = await open_store(store_url)
    try:
        start = int(T0.timestamp())
        n = 30 * 96
        holes = {*range(5, 9), *range(1400, 1500), 2000, *range(n - 3, n)}  # 1440: the first split
        now = datetime.now(UTC)
        await store.upsert_usage_reads([
            StoredRead(ESI, "consumption", T0 + timedelta(minutes=15 * i), 900, 1, "actual", "simulated", now)
            for i in range(n) if i not in holes])
        service = UsageService(store, None, ManualClock())
        assert await service.gaps(ESI, start, start + n * 900) == [
            (start + 5 * 900, start + 9 * 900), (start + 1400 * 900, start + 1500 * 900),
            (start + 2000 * 900, start + 2001 * 900), (start + (n - 3) * 900, start + n * 900)]
        assert await service.gaps(ESI, start + 9 * 900, start + 1400 * 900) == []
        assert await service.gaps("10443720000000009", start, start + 96 * 900) == [(start, start + 96 * 900)]
    finally:
        await store.close()
