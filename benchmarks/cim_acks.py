"""What acknowledging 61968-9 events only once stored costs (issue 14): the IEC 61968-9 MQTT
transport takes N EndDeviceEvents messages from the real Mosquitto broker, and each message's
content is committed to a database (one row and one commit per message: the mail queue's insert
through the gateway's store, standing in for the inbound loop's transaction of the events), first
with the PUBACK sent on receipt (the store runs beside it: what the transport did before), then
with the PUBACK sent once the commit is done, in receipt order (what it does now). The broker
sends a client only so many unacknowledged messages at once (Mosquitto: max_inflight_messages,
20 by default), so holding the PUBACK until the commit bounds how far ahead of the database the
transport can read.

    python -m benchmarks.cim_acks [--messages 2000] [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
                                  [--broker 127.0.0.1:1883]

Last line: `cim-acks: messages=N on_receipt_s=A once_stored_s=B ratio=B/A`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import aiomqtt

from ams_adapters.transports.cim_mqtt import CimMqttTransport
from ams_adapters.wire import cim
from ams_adapters.wire.common import NoteKind, Notification
from benchmarks.pipeline import _fanout_database
from gateway.store.store import Store, open_store


async def _run(store: Store, host: str, port: int, n: int, hold: bool) -> float:
    prefix = f"bench/acks/{uuid.uuid4().hex[:8]}"
    stored = 0
    done = asyncio.Event()
    beside: set[asyncio.Task[None]] = set()

    async def store_notes(notes: list[Notification]) -> None:
        nonlocal stored
        await store.enqueue_mail(recipient="bench@example.test", subject=notes[0].transaction_id, body="",
                                 now=datetime.now(UTC), lease=timedelta(0))
        stored += 1
        if stored == n:
            done.set()

    def sink(notes: list[Notification]) -> Awaitable[None] | None:
        if hold:
            return store_notes(notes)  # acknowledged once this is done
        task = asyncio.create_task(store_notes(notes))  # acknowledged now; stored beside
        beside.add(task)
        task.add_done_callback(beside.discard)
        return None

    transport = CimMqttTransport(host, port, prefix, client_id=f"{prefix}-gw", session_expiry_s=60)
    await transport.start(sink)
    try:
        at = time.time()
        bodies = [cim.encode_events(uuid.uuid4().hex, [Notification(NoteKind.DELIVERED, f"tx-{i}",
                                                                    "10089010000000001", at)]) for i in range(n)]
        async with aiomqtt.Client(host, port, identifier=f"{prefix}-headend") as headend:
            started = time.perf_counter()
            for body in bodies:
                await headend.publish(cim.topics(prefix)["events"], body, qos=1)
            await asyncio.wait_for(done.wait(), 600)
            return time.perf_counter() - started
    finally:
        await transport.close()


async def main(n: int, db: str, broker: str) -> None:
    host, _, port = broker.partition(":")
    print(f"load: {os.getloadavg()[0]:.2f}")
    results = {}
    async with _fanout_database(db) as url:
        store = await open_store(url)
        try:
            for label, hold in (("on_receipt", False), ("once_stored", True)):
                results[label] = await _run(store, host, int(port), n, hold)
                print(f"{label}: {n} messages received and stored in {results[label]:.2f} s "
                      f"({n / results[label]:.0f}/s)")
        finally:
            await store.close()
    print(f"load: {os.getloadavg()[0]:.2f}")
    print(f"cim-acks: messages={n} on_receipt_s={results['on_receipt']:.2f} "
          f"once_stored_s={results['once_stored']:.2f} ratio={results['once_stored'] / results['on_receipt']:.2f}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
                        help="empty: a SQLite file")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.db, args.broker))


if __name__ == "__main__":
    cli()
