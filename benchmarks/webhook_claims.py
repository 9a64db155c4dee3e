"""Webhook sending with claims: events/s of one sender against two senders (two instances: each its
own store, engine and pool) on one PostgreSQL database, and one sender on SQLite, in one run.

Every attempt is claimed first (gateway/store/row_claims.py); on one machine two instances are not
faster, so the ratio shows what the coordination costs (and that nothing is sent twice: the
receiver counts each `webhook-id`).

    python -m benchmarks.webhook_claims [--requests 200] [--events 10]
                                        [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Last line: `webhook-claims: instances=2 ratio_vs_1=X` (events/s of two senders / one sender).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from gateway.clock import SystemClock
from gateway.pipeline.config import PipelineConfig
from gateway.pipeline.webhooks import WebhookSender
from gateway.store import webhooks as webhook_store
from gateway.store.store import open_store
from sandbox.testbed import throwaway_database


class Receiver:
    """A minimal HTTP/1.1 receiver: 204 to every POST, counting webhook-ids."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.done = asyncio.Event()
        self.expect = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in head.split("\r\n")[1:] if line)}
                await reader.readexactly(int(headers.get("content-length", "0")))
                msg = headers["webhook-id"]
                self.seen[msg] = self.seen.get(msg, 0) + 1
                if len(self.seen) >= self.expect:
                    self.done.set()
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()


@contextlib.asynccontextmanager
async def database(url: str | None) -> AsyncIterator[str]:
    if url is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}"
        return
    async with throwaway_database("hangw_bench_claims", url) as created:
        yield created


async def run(url: str, senders: int, requests: int, events: int) -> tuple[float, int]:
    """Seconds until every event was received, and how many were received more than once."""
    receiver = Receiver()
    receiver.expect = requests * events
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = await open_store(url)
    clock = SystemClock()
    now = clock.now()
    party = await store.create_party(name="Bench", duns=f"{uuid.uuid4().int % 10**9:09d}",
                                     contact_email="b@bench.test", now=now)
    hook = await webhook_store.create_webhook(store.engine, party_id=party.id, url=f"http://127.0.0.1:{port}/h",
                                              sealed_secret="whsec_" + "A" * 32, now=now)
    async with store.transaction() as conn:
        await webhook_store.enqueue(conn, [{"webhook_id": hook, "request_id": r, "created_at": now,
                                            "body": json.dumps({"r": r, "n": n})}
                                           for r in range(requests) for n in range(events)])
    config = PipelineConfig(poll_interval_seconds=0.05, webhook_allowed_networks=["127.0.0.0/8"])  # type: ignore[list-item]
    stores = [store] + [await open_store(url, migrate_to=None) for _ in range(senders - 1)]
    workers = [WebhookSender(s, config, clock) for s in stores]
    started = time.perf_counter()
    for w in workers:
        await w.start()
    try:
        await asyncio.wait_for(receiver.done.wait(), 600)
        seconds = time.perf_counter() - started
        await asyncio.sleep(0.3)  # a repeat would arrive now
    finally:
        for w in workers:
            await w.close()
        for s in stores:
            await s.close()
        server.close()
    return seconds, sum(1 for c in receiver.seen.values() if c > 1)


async def amain(args: argparse.Namespace) -> int:
    n = args.requests * args.events
    async with database(None) as sqlite_url:
        sq, sq_twice = await run(sqlite_url, 1, args.requests, args.events)
    print(f"sqlite   senders=1 events={n} seconds={sq:.2f} events_per_s={n / sq:.0f} repeats={sq_twice}")
    results = {}
    for senders in (1, 2):
        async with database(args.db) as pg_url:
            seconds, twice = await run(pg_url, senders, args.requests, args.events)
        results[senders] = seconds
        print(f"postgres senders={senders} events={n} seconds={seconds:.2f} events_per_s={n / seconds:.0f} "
              f"repeats={twice}")
    print(f"webhook-claims: instances=2 ratio_vs_1={results[1] / results[2]:.2f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
