"""What the event log costs the delivery pipeline (issue 15), measured in one run on one database.

N premises' deliveries of one request go through the dispatcher's two set-based writes —
`mark_submitted` (the route took the batch) and `mark_delivered` (the delivery reports), in
batches of PAGE — twice: for a party with no event channel (the cost rule: no event row is
written, only one indexed probe per batch) and for a party with a webhook (an event row and an
outbox row per transition). The first is the baseline: the pipeline as a fan-out to premises of a
party that listens to nothing runs it; the ratio says what listening costs.

    python -m benchmarks.events [--premises 20000] [--db postgresql+asyncpg://postgres@127.0.0.1:5432/]

Last line: `events ratio with a webhook vs no channel: X`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from benchmarks.pipeline import _fanout_database
from gateway.store import deliveries, han_requests
from gateway.store import webhooks as webhook_store
from gateway.store.schema import party_events, webhook_outbox
from gateway.store.store import Store, open_store

PAGE = int(os.environ.get("HANGW_BENCH_FANOUT_PAGE", "5000"))
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


async def _queue(store: Store, party_id: int, n: int, first_esi: int) -> int:
    """One request of `party_id` with `n` queued deliveries; returns the request id."""
    async with store.engine.begin() as conn:
        request_id = await han_requests.insert_request(conn, party_id=party_id, kind="text", body_json="{}",
                                                       se_id=first_esi, now=NOW, targeted=n)
        await deliveries.insert(conn, [{
            "request_id": request_id, "party_id": party_id, "esi_id": f"1044372{first_esi + i:010d}",
            "agreement_id": None, "se_id": first_esi, "se_version": "1.1", "cluster_id": 0x0703,
            "command": "display_message", "fields": None, "state": deliveries.QUEUED, "attempts": 0,
            "next_attempt_at": NOW, "expires_at": NOW + timedelta(days=1), "created_at": NOW,
            "updated_at": NOW, "cancels_request_id": None, "target_eui64": None} for i in range(n)])
    return request_id


async def _run(store: Store, n: int) -> float:
    """Seconds to submit and then deliver every queued delivery, a batch at a time."""
    t0 = time.perf_counter()
    handed: list[int] = []
    while True:
        due = await deliveries.read_due(store.engine, NOW, PAGE)
        if not due:
            break
        async with store.engine.begin() as conn:
            await deliveries.mark_submitted(conn, due, NOW)
        handed.extend(d.id for d in due)
    for i in range(0, len(handed), PAGE):
        async with store.engine.begin() as conn:
            await deliveries.mark_delivered(conn, dict.fromkeys(handed[i:i + PAGE], (NOW, None)))
    assert len(handed) == n, (len(handed), n)
    return time.perf_counter() - t0


async def _counts(store: Store, party_id: int) -> tuple[int, int]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(sa.func.count()).select_from(party_events).where(
            party_events.c.party_id == party_id))).scalar_one()
        queued = (await conn.execute(sa.select(sa.func.count()).select_from(webhook_outbox))).scalar_one()
    return int(rows), int(queued)


async def benchmark(n: int, db: str | None) -> float:
    async with _fanout_database(db) as url:
        store = await open_store(url)
        try:
            quiet = await store.create_party(name="Quiet", duns="111111111", contact_email="q@x.test", now=NOW)
            loud = await store.create_party(name="Loud", duns="222222222", contact_email="l@x.test", now=NOW)
            await webhook_store.create_webhook(store.engine, party_id=loud.id, url="https://example.com/hook",
                                               sealed_secret="sealed", now=NOW)
            # Warm-up of both paths (statement compilation, caches), not measured.
            warm = min(n, 200)
            for party, first in ((quiet.id, 4 * n), (loud.id, 5 * n)):
                await _queue(store, party, warm, first)
                await _run(store, warm)
            await _queue(store, quiet.id, n, 0)
            base = await _run(store, n)
            await _queue(store, loud.id, n, n)
            with_hook = await _run(store, n)
            quiet_events, _ = await _counts(store, quiet.id)
            loud_events, outbox = await _counts(store, loud.id)
            loud_events, outbox = loud_events - 2 * warm, outbox - 2 * warm  # not the warm-up's
        finally:
            await store.close()
    backend = "postgresql" if db else "sqlite"
    print(f"{backend}, {n:,} deliveries submitted then delivered in batches of {PAGE}; load {_load()}")
    print(f"no event channel: {base:.2f} s ({2 * n / base:,.0f} transitions/s), {quiet_events} event rows")
    print(f"one webhook:      {with_hook:.2f} s ({2 * n / with_hook:,.0f} transitions/s), {loud_events:,} event rows, "
          f"{outbox:,} outbox rows")
    assert quiet_events == 0 and loud_events == outbox == 2 * n
    return with_hook / base


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--premises", type=int, default=20_000)
    parser.add_argument("--db", help="PostgreSQL server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/")
    args = parser.parse_args(argv)
    ratio = asyncio.run(benchmark(args.premises, args.db))
    print(f"events ratio with a webhook vs no channel: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
