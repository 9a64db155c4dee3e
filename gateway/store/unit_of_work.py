"""A unit of work: one transaction around a whole API operation, shared by every store call in it.

Why: an `Idempotency-Key` must be stored in the *same* transaction as the action it guards, so that
a gateway killed at any moment leaves either both (the retry replays the stored answer) or neither
(the retry acts once). The store's methods each open their own transaction (`engine.begin()`); while
a unit of work is open, those calls — made by the task that opened it — join its transaction
instead, so the handler's writes, its reads of its own writes and the stored answer commit together.

Only the task that opened the unit joins it: tasks it starts (the group committer's writer, the
dispatcher) keep their own transactions, though they inherit its context variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

Connection = AsyncConnection
"""An open transaction's connection, as the store's functions that write in their caller's
transaction take it. Code outside gateway/store only passes it along (from `Store.transaction()`)."""


@dataclass(frozen=True)
class _Unit:
    task: asyncio.Task[object] | None
    conn: AsyncConnection
    after: list[Callable[[], Awaitable[object]]] = field(default_factory=list)


_current: ContextVar[_Unit | None] = ContextVar("hangw_unit_of_work", default=None)


def _joined() -> _Unit | None:
    unit = _current.get()
    if unit is None or unit.task is not asyncio.current_task():
        return None
    return unit


def joined_connection() -> AsyncConnection | None:
    """The open unit of work's connection if the running task opened one, else None."""
    unit = _joined()
    return unit.conn if unit is not None else None


def after_commit(action: Callable[[], Awaitable[object]]) -> bool:
    """Run `action` once the running task's unit of work has committed (never if it rolls back):
    for effects outside the database, such as sending a mail it stored. False when no unit is open
    (the caller acts now)."""
    unit = _joined()
    if unit is None:
        return False
    unit.after.append(action)
    return True


class UnitOfWorkEngine(AsyncEngine):
    """An AsyncEngine (same sync engine, same pool) whose `begin()`/`connect()` join an open unit of
    work of the calling task."""

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        conn = joined_connection()
        if conn is not None:
            yield conn  # committed (or rolled back) with the unit
            return
        async with self._own_begin() as own:
            yield own

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:  # type: ignore[override]
        conn = joined_connection()
        if conn is not None:
            yield conn  # reads see the unit's own uncommitted writes
            return
        async with super().connect() as own:
            yield own

    def _own_begin(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A transaction of its own (overridden where writes are serialized)."""
        return raw_begin(self)

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncConnection]:
        """Open a unit: store calls of this task join it until the block ends; it commits when the
        block ends normally and rolls back when it raises."""
        if joined_connection() is not None:
            raise RuntimeError("a unit of work is open already in this task")
        async with self._own_begin() as conn:
            unit = _Unit(asyncio.current_task(), conn)
            token = _current.set(unit)
            try:
                yield conn
            finally:
                _current.reset(token)
        for action in unit.after:  # committed
            try:
                await action()
            except Exception:  # the commit stands; the effect is retried by its own owner
                log.exception("an action after a commit failed")


@contextlib.asynccontextmanager
async def raw_begin(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """AsyncEngine.begin() without the unit-of-work lookup (its own connection and transaction)."""
    async with AsyncEngine.connect(engine) as conn, conn.begin():
        yield conn


def unit_engine(engine: AsyncEngine) -> UnitOfWorkEngine:
    """`engine` (its sync engine and pool) as a UnitOfWorkEngine."""
    if isinstance(engine, UnitOfWorkEngine):
        return engine
    return UnitOfWorkEngine(engine.sync_engine)
