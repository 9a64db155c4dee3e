"""The event feed never skips an event (gateway/store/events.py): on PostgreSQL, many transactions
record events of one party at once, each holding its commit back for a while after taking its id,
while a reader pages through `events_after` from the last id it saw, as a feed client or the MQTT
publisher does. Every event is read, once, in id order. (Without the party's advisory lock an id
taken earlier could commit after a higher one was read, and the reader would pass it for ever.)
SQLite has one writer at a time."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from gateway.store import events
from gateway.store.store import open_store

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


async def test_a_reader_from_the_last_id_seen_misses_no_event(migrated_pg_url: str) -> None:
    store = await open_store(migrated_pg_url)
    try:
        party = await store.create_party(name="Acme", duns="123456789", contact_email="a@x.test", now=NOW)
        other = await store.create_party(name="Bolt", duns="987654321", contact_email="b@x.test", now=NOW)
        rng = random.Random(15)
        written: list[int] = []

        async def producer(n: int) -> None:
            await asyncio.sleep(rng.uniform(0, 0.2))  # transactions start at scattered times
            async with store.engine.begin() as conn:
                for party_id in (other.id, party.id) if n % 3 == 0 else (party.id,):
                    written.extend(i for i in await events.record_events(conn, [events.NewEvent(
                        party_id, "agreement.accepted", f"agreement:{n}", {"n": n}, NOW)]) if party_id == party.id)
                # Commit a while after taking the ids: without the lock, the higher ids of later
                # transactions would commit, and be read, first.
                await asyncio.sleep(rng.uniform(0.05, 0.2))

        read: list[int] = []
        done = asyncio.Event()

        async def reader() -> None:
            after = 0
            while True:
                finished = done.is_set()
                page = await events.events_after(store.engine, party.id, after, 7)
                read.extend(e.id for e in page)
                after = page[-1].id if page else after
                if finished and not page:
                    return
                await asyncio.sleep(0.005)

        reading = asyncio.create_task(reader())
        await asyncio.gather(*(producer(n) for n in range(12)))
        done.set()
        await reading
        assert len(written) == 12
        assert read == sorted(written)  # every event once, in id order, none of the other party's
    finally:
        await store.close()
