"""Work that one instance at a time does, among instances sharing one PostgreSQL database: a
session-level advisory lock (`pg_try_advisory_lock`) held on a connection of its own for the
length of the work. The lock goes with the connection, so an instance that dies mid-way (kill -9)
frees it at once and another instance does the work on its next try. A SQLite file has one
instance (a second is refused at start), which always may."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import advisory_locks

log = logging.getLogger(__name__)

# The keys are listed in advisory_locks.py, with every other advisory lock, so no two uses collide.
DISPATCHER_SWEEPS = advisory_locks.DISPATCHER_SWEEPS
USAGE_INGESTION = advisory_locks.USAGE_INGESTION


@contextlib.asynccontextmanager
async def one_at_a_time(engine: AsyncEngine, key: int) -> AsyncIterator[bool]:
    """True inside the block when this instance holds lock `key` (no other instance is in a block
    of the same key); False when another instance holds it (the caller skips the work this time)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    async with engine.connect() as opened:
        # Autocommit: the connection holds the lock, not an idle transaction.
        conn = await opened.execution_options(isolation_level="AUTOCOMMIT")
        held = bool((await conn.execute(sa.select(sa.func.pg_try_advisory_lock(key)))).scalar())
        try:
            yield held
        finally:
            if held:
                try:
                    await conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                except Exception:  # the connection broke: the lock ended with its session
                    log.warning("advisory lock %#x: unlock failed; the session that held it is gone", key,
                                exc_info=True)
                    await conn.invalidate()
