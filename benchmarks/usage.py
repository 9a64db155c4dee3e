"""Usage data, ingest half (issue 16): reads ingested per second from the simulated route into the
store, through the gateway's own ingestion (`gateway.usage.UsageService.fetch`: the route's read,
then the upsert of `usage_reads`), beside the time to merely read the same rows back from the store
(`usage_page`, keyset pages) in the same run.

    python -m benchmarks.usage [--premises 200] [--days 7]
                               [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

SQLite in a temporary directory by default; `--db` names a PostgreSQL server, on which a fresh
database is made and dropped. The export half of the issue's benchmark (a month of 15-minute data
for 10,000 premises as CSV and ESPI) is not built: the last line says `export_premises=0`, and
`seconds` is the ingestion's. The same run also ingests the same premises and period through a TDSP
head-end emulator over its protocol (`--headend multispeak|cim|binary`, default multispeak; `none`
skips it; cim needs Mosquitto at 127.0.0.1:1883): the real adapter's paged interval reads over
loopback, into a fresh store, printed on the line before the last as `headend=… ingest_per_s=…
ratio_vs_simulated=…`. Last line:
`usage: ingest_per_s=X export_premises=0 seconds=S rss_mb=R ratio_vs_read=Q` (Q: ingest time over
read time of the same rows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.profiles import load_profile
from gateway.clock import SystemClock
from gateway.pipeline.dispatcher import RouteSet
from gateway.store.store import Store, open_store
from gateway.usage import UsageService
from sandbox.headends import headend_for_profile
from sandbox.simulated_route import SimulatedRoute
from simulators.clock import VirtualClock
from simulators.field import SimField
from simulators.meter import SimMeter


@contextlib.asynccontextmanager
async def _store(tmp: Path, server_url: str | None) -> AsyncIterator[Store]:
    if server_url is None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp / 'usage.db'}")
        try:
            yield store
        finally:
            await store.close()
        return
    admin = server_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"hangw_bench_usage_{random.randrange(16**8):08x}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    store = await open_store(server_url.rsplit("/", 1)[0] + "/" + name)
    try:
        yield store
    finally:
        await store.close()
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


HEADEND_TDSP = {"multispeak": "oncor", "cim": "centerpoint", "binary": "tnmp"}


async def _headend_ingest(transport: str, field: SimField, clock: VirtualClock, esi_ids: list[str], *,
                          period: tuple[int, int], tmp: Path, server_url: str | None) -> tuple[int, float]:
    """(reads stored, seconds) ingesting `esi_ids` over `period` through a head-end emulator of
    `transport` and the TDSP adapter that speaks it, into a fresh store."""
    profile = load_profile(HEADEND_TDSP[transport])
    headend = headend_for_profile(profile, field, clock, topic_prefix=f"bench/usage/{random.randrange(16**6):06x}")
    await headend.start()
    port = getattr(headend, "port", 1883)
    adapter = make_adapter(AdapterConfig(profile.tdsp, url=f"http://127.0.0.1:{port}", port=port,
                                         topic_prefix=getattr(headend, "prefix", "hangw")))
    await adapter.start()
    (tmp / transport).mkdir()
    try:
        async with _store(tmp / transport, server_url) as store:
            service = UsageService(store, RouteSet(adapter), SystemClock())
            t0 = time.perf_counter()
            stored = 0
            for esi in esi_ids:
                stored += await service.fetch(esi, *period)
            return stored, time.perf_counter() - t0
    finally:
        await adapter.close()
        await headend.close()


async def run(premises: int, days: int, server_url: str | None, headend: str = "multispeak") -> str:
    now = int(time.time()) // 900 * 900
    start = now - days * 86_400
    clock = VirtualClock(start=now, seed=1)
    field = SimField(clock)
    esi_ids = [f"1044372{n:010d}" for n in range(1, premises + 1)]
    for esi in esi_ids:
        field.add_meter(SimMeter(esi, clock))
    with tempfile.TemporaryDirectory(prefix="hangw-bench-usage-") as tmp:
        async with _store(Path(tmp), server_url) as store:
            service = UsageService(store, RouteSet(SimulatedRoute(field)), SystemClock())
            t0 = time.perf_counter()
            stored = 0
            for esi in esi_ids:
                stored += await service.fetch(esi, start, now)
            ingest_s = time.perf_counter() - t0

            # The baseline: read the same rows back, as the usage API pages them.
            t0 = time.perf_counter()
            read = 0
            begin, end = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(now, UTC)
            for esi in esi_ids:
                after = None
                while True:
                    page = await store.usage_page(esi, begin, end, after=after, limit=5000)
                    read += len(page)
                    if len(page) < 5000:
                        break
                    after = (page[-1].interval_start, page[-1].channel)
            read_s = time.perf_counter() - t0
        if headend != "none":
            via_headend, headend_s = await _headend_ingest(headend, field, clock, esi_ids, period=(start, now),
                                                           tmp=Path(tmp), server_url=server_url)
            assert via_headend == stored, (via_headend, stored)
    assert read == stored, (read, stored)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = "postgresql" if server_url else "sqlite"
    print(f"store={backend} premises={premises} days={days} reads={stored} ingest={ingest_s:.2f}s "
          f"read={read_s:.2f}s load={os.getloadavg()[0]:.2f}")
    print("export (CSV, ESPI): not built yet")
    if headend != "none":
        print(f"headend={headend} reads={via_headend} ingest={headend_s:.2f}s "
              f"ingest_per_s={via_headend / headend_s:.0f} ratio_vs_simulated={headend_s / ingest_s:.2f}")
    return (f"usage: ingest_per_s={stored / ingest_s:.0f} export_premises=0 seconds={ingest_s:.2f} "
            f"rss_mb={rss_mb:.0f} ratio_vs_read={ingest_s / read_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--premises", type=int, default=200)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--headend", default="multispeak", choices=[*HEADEND_TDSP, "none"],
                        help="also ingest through this head-end protocol's emulator (default multispeak)")
    args = parser.parse_args()
    print(asyncio.run(run(args.premises, args.days, args.db, args.headend)))


if __name__ == "__main__":
    main()
