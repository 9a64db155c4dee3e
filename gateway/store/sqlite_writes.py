"""One writer at a time, in process, for SQLite.

SQLite has one writer per database. Left to itself, a second connection that wants to write while
another holds the lock waits in SQLite's busy handler, which sleeps in steps of up to 100 ms and,
past `busy_timeout`, fails with "database is locked". Under concurrent API requests (each a short
write transaction on its own pooled connection) that made latency jump by whole busy-handler sleeps
and, on a loaded machine, failed requests with 500. Here write transactions (`engine.begin()`) take
an asyncio lock first: they queue on the event loop, in arrival order, and never meet each other in
the busy handler. Reads (`engine.connect()`) are not serialized: WAL readers never block the writer.

The lock is re-entrant per task: a task that already holds it and opens another write transaction
(on another connection) does not deadlock on itself; that inner transaction then meets SQLite's
own locking exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.unit_of_work import UnitOfWorkEngine, raw_begin, unit_engine


class SerializedWriteEngine(UnitOfWorkEngine):
    """An AsyncEngine (same sync engine, same pool) whose own write transactions run one at a time
    (a unit of work holds the lock for its whole length)."""

    def __init__(self, sync_engine: Engine) -> None:
        super().__init__(sync_engine)
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.Task[object] | None = None

    @contextlib.asynccontextmanager
    async def _own_begin(self) -> AsyncIterator[AsyncConnection]:
        task = asyncio.current_task()
        if task is not None and task is self._writer:
            async with raw_begin(self) as conn:  # nested in this task's own write transaction
                yield conn
            return
        async with self._write_lock:
            self._writer = task
            try:
                async with raw_begin(self) as conn:
                    yield conn
            finally:
                self._writer = None


def serialize_writes(engine: AsyncEngine) -> UnitOfWorkEngine:
    """The engine to use: SQLite engines get serialized writes, others only units of work
    (PostgreSQL locks rows, not the database)."""
    if isinstance(engine, SerializedWriteEngine):
        return engine
    if engine.dialect.name != "sqlite":
        return unit_engine(engine)
    return SerializedWriteEngine(engine.sync_engine)
