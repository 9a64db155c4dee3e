"""Stored answers to idempotent requests (table `idempotency_keys`, migration 0011).

Rows are inserted only inside the unit of work of the action they guard (see
gateway/api/idempotency.py): their presence means the action committed. `reserve` is that unit's
first statement: across gateway instances on one PostgreSQL it makes a second request with the same
key wait until the first one's unit has ended, before it acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import advisory_locks
from gateway.store.schema import idempotency_keys


@dataclass(frozen=True)
class SealedAnswer:
    operation: str
    request_mac: str
    status_code: int
    content_type: str
    sealed_body: bytes


async def find(engine: AsyncEngine, scope: str, key_hash: str) -> SealedAnswer | None:
    async with engine.connect() as conn:
        row = (await conn.execute(idempotency_keys.select().where(
            idempotency_keys.c.scope == scope, idempotency_keys.c.key_hash == key_hash))).first()
    if row is None:
        return None
    return SealedAnswer(row.operation, row.request_mac, row.status_code, row.content_type, row.sealed_body)


async def reserve(conn: AsyncConnection, scope: str, key_hash: str) -> SealedAnswer | None:
    """Reserve the key for the caller's transaction (a unit of work), waiting while another
    transaction — of this instance or another — holds it; then the answer that transaction stored,
    if it committed one. On PostgreSQL a transaction-level advisory lock on (scope, key): released
    when the holder commits or rolls back, or its instance dies. Read committed: the read after the
    wait sees the holder's commit. On SQLite (one process, one writer) only the read."""
    await advisory_locks.lock(conn, advisory_locks.IDEMPOTENCY_KEY, f"{scope}\n{key_hash}")
    row = (await conn.execute(idempotency_keys.select().where(
        idempotency_keys.c.scope == scope, idempotency_keys.c.key_hash == key_hash))).first()
    if row is None:
        return None
    return SealedAnswer(row.operation, row.request_mac, row.status_code, row.content_type, row.sealed_body)


async def insert(conn: AsyncConnection, scope: str, key_hash: str, answer: SealedAnswer, now: datetime) -> None:
    """Insert in the caller's transaction (a unit of work): when the key is taken (another request
    with it committed first) the unit raises ConstraintViolation."""
    await conn.execute(idempotency_keys.insert().values(
        scope=scope, key_hash=key_hash, operation=answer.operation, request_mac=answer.request_mac,
        status_code=answer.status_code, content_type=answer.content_type, sealed_body=answer.sealed_body,
        created_at=now))


class IdempotencyStore:
    """Housekeeping of the stored answers (mixed into `Store`)."""

    engine: AsyncEngine

    async def purge_idempotent(self, before: datetime) -> int:
        """Forget stored responses older than `before` (keys are for retries, not archives)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.created_at < before))
        return int(result.rowcount or 0)
