"""What claiming the delivery queue costs on PostgreSQL (several instances) against reading it
unclaimed (one instance), measured in the same run on the same rows: N queued deliveries are
taken in dispatcher passes of `--batch` rows and each pass recorded `submitted` (as the dispatcher
does once the route answers), first without a claim, then with the claim (`FOR UPDATE SKIP LOCKED`
and the lease written on `next_attempt_at`), then with the claim by three engines at once (three
instances sharing the queue on the same cores).

    python -m benchmarks.claims [--deliveries 100000] [--batch 500]
                                [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Last line: `claims: deliveries=N plain_s=A claimed_s=B three_s=C ratio=B/A`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

from benchmarks.pipeline import _fanout_database
from gateway.store import deliveries
from gateway.store.schema import han_deliveries, han_requests
from gateway.store.store import Store, open_store

LEASE = timedelta(seconds=60)


async def _fill(url: str, n: int, now: datetime) -> None:
    store = await open_store(url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(han_deliveries.delete())
            rid = (await conn.execute(han_requests.insert().values(
                kind="text", body="{}", target_all=False, targeted=0, excluded="[]", state="accepted",
                created_at=now).returning(han_requests.c.id))).scalar_one()
            for start in range(0, n, 10_000):
                await deliveries.insert(conn, [{
                    "request_id": rid, "party_id": 1 + i % 2, "esi_id": f"{i:022d}", "agreement_id": None,
                    "se_id": i, "se_version": "1.1", "cluster_id": 0x0703, "command": "display_message",
                    "fields": "{}", "state": "queued", "attempts": 0, "next_attempt_at": now,
                    "expires_at": now + timedelta(hours=2), "created_at": now, "updated_at": now,
                    "target_eui64": None} for i in range(start, min(n, start + 10_000))])
            await conn.exec_driver_sql("ANALYZE han_deliveries")
    finally:
        await store.close()


async def _drain(store: Store, now: datetime, batch: int, lease: timedelta | None) -> int:
    taken = 0
    while rows := await deliveries.read_due(store.engine, now, batch, lease=lease):
        async with store.engine.begin() as conn:
            await deliveries.mark_submitted(conn, rows, now)
        taken += len(rows)
    return taken


async def main(n: int, batch: int, db: str) -> None:
    print(f"load: {os.getloadavg()[0]:.2f}")
    async with _fanout_database(db) as url:
        now = datetime.now(UTC)
        results = {}
        for label, lease, engines in (("plain", None, 1), ("claimed", LEASE, 1), ("three", LEASE, 3)):
            await _fill(url, n, now)
            stores = [await open_store(url) for _ in range(engines)]  # one after another: each migrates
            started = time.perf_counter()
            taken = sum(await asyncio.gather(*(_drain(s, now, batch, lease) for s in stores)))
            results[label] = time.perf_counter() - started
            for s in stores:
                await s.close()
            assert taken == n, (label, taken)  # every row once: a row taken twice would count twice
            print(f"{label}: {n} deliveries in {results[label]:.2f} s ({engines} engine(s))")
    print(f"load: {os.getloadavg()[0]:.2f}")
    print(f"claims: deliveries={n} plain_s={results['plain']:.2f} claimed_s={results['claimed']:.2f} "
          f"three_s={results['three']:.2f} ratio={results['claimed'] / results['plain']:.2f}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    asyncio.run(main(args.deliveries, args.batch, args.db))


if __name__ == "__main__":
    cli()
