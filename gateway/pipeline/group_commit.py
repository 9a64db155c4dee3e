"""Group commit of accepted requests: concurrent acceptances share one transaction.

A text or price request to listed premises needs no reads under the write lock (no arbitration),
so its acceptance is pure inserts: the SE id, the request row, its delivery rows, its authorization
decisions. Written one request per transaction, that is ~5 statements, each a round trip to the
database thread, and a commit (an fsync) per request, while every other writer waits. Here the
requests that arrive while a transaction is being written wait for the next one, and that one
writes all of them with the same 5 statements: N SE ids (the counter's UPDATE by N on SQLite, the
sequence on PostgreSQL, after the premises' advisory locks), one INSERT of
N request rows, one of their delivery rows, one of their audit rows, one COMMIT.

Each caller still gets its answer only after *its* transaction committed (a 202 means committed;
the crash test holds), and SE ids are allocated in arrival order, so they still increase. If a
group's transaction fails, its requests are written again one by one, so that one bad request
fails alone and the others are not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.pipeline import delivery_queue
from gateway.pipeline.requests import Command, with_se_id
from gateway.store import advisory_locks, audit, deliveries, han_requests
from gateway.store.se_ids import allocate_se_ids
from gateway.store.store import Store
from gateway.store.unit_of_work import Connection, joined_connection

log = logging.getLogger(__name__)

MAX_GROUP = 200  # requests per transaction


@dataclass
class NewRequest:
    """One request to insert: everything but its SE id, which the group allocates."""

    party_id: int
    kind: str
    body_json: str
    command: Command
    targets: list[delivery_queue.DeliveryTarget]
    excluded_json: str
    audit: list[dict[str, Any]]
    now: datetime
    fanout: bool = False
    result: asyncio.Future[tuple[int, int]] | None = field(default=None, repr=False)


async def write_group(conn: Connection, items: Sequence[NewRequest]) -> list[tuple[int, int]]:
    """Insert `items` in the caller's transaction; returns (request id, SE id) per item."""
    # The premises' locks before the ids (PostgreSQL): a meter's ids then increase in the order its
    # deliveries are queued, across instances (gateway/store/se_ids.py).
    await advisory_locks.lock_premises(conn, {t.esi_id for item in items for t in item.targets})
    se_ids = await allocate_se_ids(conn, len(items))
    commands = [with_se_id(item.command, se_id) for item, se_id in zip(items, se_ids, strict=True)]
    rows = [{
        "party_id": item.party_id, "kind": item.kind, "body": item.body_json, "se_id": se_id,
        "command": delivery_queue.shared_command(command), "target_all": item.fanout,
        "fanout_after": "" if item.fanout else None, "targeted": len(item.targets),
        "excluded": item.excluded_json, "state": "expanding" if item.fanout else "accepted",
        "cancels_request_id": None, "starts_at": command.starts_at, "ends_at": command.ends_at,
        "created_at": item.now} for item, se_id, command in zip(items, se_ids, commands, strict=True)]
    request_ids = await han_requests.insert_requests(conn, rows)
    rows_of_deliveries: list[dict[str, Any]] = []
    for item, se_id, command in zip(items, se_ids, commands, strict=True):
        rows_of_deliveries.extend(delivery_queue.delivery_rows(
            request_id=request_ids[se_id], party_id=item.party_id, se_id=se_id, command=command,
            targets=item.targets, now=item.now))
    await deliveries.insert(conn, rows_of_deliveries)
    await audit.write_decisions(conn, [row for item in items for row in item.audit])
    return [(request_ids[se_id], se_id) for se_id in se_ids]


class GroupCommitter:
    """Queues requests and writes them in groups, one transaction at a time (per store)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[NewRequest] = []
        self._writer: asyncio.Task[None] | None = None
        self.groups = 0  # transactions written (for tests and the benchmark's notes)

    async def submit(self, item: NewRequest) -> tuple[int, int]:
        if joined_connection() is not None:
            # A keyed request's unit of work: written in its transaction, with its stored answer
            # (the group's writer would wait for the unit's write lock, and the unit for it).
            async with self.store.transaction() as conn:
                (result,) = await write_group(conn, [item])
            return result
        item.result = asyncio.get_running_loop().create_future()
        self._queue.append(item)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        # shield: a caller that goes away (client disconnect) does not stop its group's commit.
        return await asyncio.shield(item.result)

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            try:
                async with self.store.transaction() as conn:
                    results = await write_group(conn, group)
            except Exception:
                log.warning("a group of %d requests failed; writing them one by one", len(group), exc_info=True)
                for item in group:
                    await self._write_alone(item)
                continue
            self.groups += 1
            for item, result in zip(group, results, strict=True):
                _resolve(item, result=result)

    async def _write_alone(self, item: NewRequest) -> None:
        try:
            async with self.store.transaction() as conn:
                (result,) = await write_group(conn, [item])
        except Exception as exc:
            _resolve(item, error=exc)
            return
        _resolve(item, result=result)


def _resolve(item: NewRequest, *, result: tuple[int, int] | None = None, error: BaseException | None = None) -> None:
    """Settle the caller's future (it may have been cancelled meanwhile: its client went away)."""
    assert item.result is not None
    with contextlib.suppress(asyncio.InvalidStateError):
        if error is not None:
            item.result.set_exception(error)
        else:
            assert result is not None
            item.result.set_result(result)


def committer_for(store: Store) -> GroupCommitter:
    """The store's committer (one writer queue per store and event loop)."""
    found = getattr(store, "_group_committer", None)
    loop = asyncio.get_running_loop()
    if found is None or found[0] is not loop:
        found = (loop, GroupCommitter(store))
        store._group_committer = found  # type: ignore[attr-defined]
    committer: GroupCommitter = found[1]
    return committer
