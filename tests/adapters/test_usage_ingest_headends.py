"""Ingestion (gateway/usage.py) through a head-end route (issue 16): the reads a head-end serves from
the simulated meter are stored per premise with their quality; the head-end goes down, comes back,
and the gap is filled without fetching what is stored again; re-sent reads are stored once; a
garbled answer stores nothing and loses nothing. Over each protocol, on SQLite and on the real
PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ams_adapters.contract import Route
from ams_adapters.usage import UsageAnswerInvalid, UsageUnavailable
from gateway.clock import SystemClock
from gateway.store.store import open_store
from gateway.usage import UsageService
from simulators.headends.faults import Faults
from simulators.usage import load_shape
from tests.adapters.harness import rig, until_reads_again


class OneRoute:
    """The gateway's route set reduced to one route (the `RouteLookup` ingestion asks)."""

    def __init__(self, route: Route) -> None:
        self.route = route

    def for_premise(self, esi_id: str) -> Route | None:
        return self.route


def _utc(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    url: str = request.getfixturevalue("migrated_pg_url")
    return url


@pytest.mark.parametrize(("tdsp", "store_url"), [("oncor", "sqlite"), ("centerpoint", "postgresql"),
                                                 ("tnmp", "sqlite"), ("oncor", "postgresql")],
                         indirect=["store_url"])
async def test_ingestion_stores_fills_the_gap_after_an_outage_and_never_duplicates(tdsp: str, store_url: str) -> None:
    store = await open_store(store_url)
    faults = Faults()
    try:
        async with rig(tdsp, meters=12, faults=faults, max_intervals_per_read=24,
                       profile_overrides={"retries": 0}) as r:
            esi = next(e for e in (r.fleet.esi_id(i) for i in range(12)) if load_shape(e).solar_kw)
            service = UsageService(store, OneRoute(r.adapter), SystemClock())
            end = int(time.time()) // 900 * 900 - 900
            mid, start = end - 6 * 3600, end - 12 * 3600

            # The last 6 hours: stored as the meter has them, both channels, with their quality.
            assert await service.fill_gaps(esi, _utc(mid), _utc(end)) == 2 * 24
            stored = await store.usage_page(esi, _utc(mid), _utc(end), limit=1000)
            own = r.fleet.meter(esi).read_usage(mid, end)
            assert [(int(s.interval_start.timestamp()), s.channel, s.value_wh, s.quality, s.source)
                    for s in stored] == [(m.start, m.channel, m.value_wh, m.quality, tdsp) for m in own]

            # A garbled answer: refused by field, value and limit; nothing stored is lost.
            faults.bad_read_rate = 1.0
            with pytest.raises(UsageAnswerInvalid, match="value"):
                await service.fill_gaps(esi, _utc(start), _utc(end))
            faults.bad_read_rate = 0.0
            assert await store.count_usage_reads(esi) == 48

            # The head-end goes away: unavailable (ingestion reports it and comes back), nothing lost.
            down = asyncio.create_task(r.headend.down_for(r.adapter.profile.request_timeout_s + 1.0))
            await asyncio.sleep(0.3)
            with pytest.raises(UsageUnavailable) as away:
                await service.fill_gaps(esi, _utc(start), _utc(end))
            assert away.value.retry_after_s
            assert await store.count_usage_reads(esi) == 48
            await down
            await until_reads_again(r, esi)

            # Back: the gap (the first 6 hours) is fetched, and only the gap.
            read_before = r.core.stats["intervals_read"]
            assert await service.fill_gaps(esi, _utc(start), _utc(end)) == 2 * 24
            assert r.core.stats["intervals_read"] - read_before == 2 * 24
            assert await store.count_usage_reads(esi) == 2 * 48
            assert await service.gaps(esi, start, end) == []
            assert await service.fill_gaps(esi, _utc(start), _utc(end)) == 0  # nothing left to fetch

            # The head-end sends the whole period again: stored once.
            assert await service.fetch(esi, start, end) == 2 * 48
            assert await store.count_usage_reads(esi) == 2 * 48
            every = await store.usage_page(esi, _utc(start), _utc(end), limit=1000)
            assert [(int(s.interval_start.timestamp()), s.channel, s.value_wh) for s in every] == [
                (m.start, m.channel, m.value_wh) for m in r.fleet.meter(esi).read_usage(start, end)]
    finally:
        await store.close()
