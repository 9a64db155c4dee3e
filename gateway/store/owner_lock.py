"""One owner at a time for something physical (a local radio's coordinator): a PostgreSQL
session-level advisory lock held on a connection of its own.

Why an advisory lock and not a lease row: the lock belongs to the owner's database session, so
PostgreSQL releases it the moment that session ends — a `kill -9`, a crash or a closed socket
frees it at once, with no lease length to tune, no clock to trust and no renewal writes. A lease
row would make a standby wait out the lease after every crash (and a lease short enough for quick
failover costs a write every few seconds per owner).

The connection is not taken from the store's pool: a pooled connection handed back would keep the
lock, and the pool may recycle it. The owner asks `still_held()` every few seconds; when its
session is gone (network cut, database restarted, `pg_terminate_backend`) it must stop driving the
device before PostgreSQL can give the lock to another instance. The session asks the server to
probe an idle client with TCP keepalives (server_keepalive below), so a partitioned owner's
session ends — and the lock passes on — only after the owner's own check has already failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

# The server notices a vanished client after idle + interval × count seconds of silence. The
# owner's own check fails at most two check timeouts after its last good probe (one interval, then
# a probe that times out), so the idle time starts past that: the owner stops first.
KEEPALIVE_INTERVAL_S: Final = 2
KEEPALIVE_COUNT: Final = 3


def server_keepalive(check_timeout_s: float) -> dict[str, str]:
    """The session's TCP keepalive settings (PostgreSQL GUCs, settable per session)."""
    idle = math.ceil(2 * check_timeout_s) + 5
    return {"tcp_keepalives_idle": str(idle), "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL_S),
            "tcp_keepalives_count": str(KEEPALIVE_COUNT)}


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (pg_advisory_lock takes a bigint)."""
    digest = hashlib.blake2b(f"hangw:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class OwnerLock:
    """`await lock.try_acquire()` → True when this instance is now the owner; `still_held()` while
    it drives the device; `release()` when it stops. Not reentrant; one owner per name."""

    def __init__(self, engine: AsyncEngine, name: str, *, check_timeout_s: float = 2.0) -> None:
        self.name = name
        self.key = lock_key(name)
        self.check_timeout_s = check_timeout_s
        # Same database and credentials as the store; its own connection, named so that an
        # operator sees the owner in pg_stat_activity (and the key in pg_locks).
        self._engine = create_async_engine(
            engine.url, poolclass=NullPool,
            connect_args={"server_settings": {**server_keepalive(check_timeout_s),
                                              "application_name": f"hangw owner {name}"[:63]}})
        self._conn: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def try_acquire(self) -> bool:
        """Take the lock if no live session holds it; never waits for it."""
        if self._conn is not None:
            return True
        conn = await self._engine.connect()
        try:
            async with asyncio.timeout(self.check_timeout_s):
                got = (await conn.execute(sa.select(sa.func.pg_try_advisory_lock(self.key)))).scalar_one()
                await conn.commit()  # the lock is the session's, not the transaction's
        except BaseException:
            await _drop(conn)
            raise
        if not got:
            await _drop(conn)
            return False
        self._conn = conn
        return True

    async def still_held(self) -> bool:
        """Whether this session still holds the lock: False once its connection is gone (then
        another instance may hold it already). Idempotent; a lost lock stays lost until
        `try_acquire` takes it again."""
        conn = self._conn
        if conn is None:
            return False
        try:
            async with asyncio.timeout(self.check_timeout_s):
                # Asked of the server, not assumed: a session ended by pg_terminate_backend fails
                # here, and a restarted server has no lock for this key.
                held = (await conn.execute(sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                    "AND granted AND objsubid = 1 AND classid::bigint = :hi AND objid::bigint = :lo"),
                    {"hi": (self.key >> 32) & 0xFFFFFFFF, "lo": self.key & 0xFFFFFFFF})).scalar_one()
                await conn.commit()
        except Exception:
            held = 0
        if not held:
            self._conn = None
            await _drop(conn)
            return False
        return True

    async def release(self) -> None:
        """Give up ownership: closing the session releases the lock."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await _drop(conn)

    async def close(self) -> None:
        await self.release()
        await self._engine.dispose()


async def _drop(conn: AsyncConnection) -> None:
    # The session ends with its connection; a connection already broken is only discarded.
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
