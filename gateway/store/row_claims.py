"""Claims on queue rows with a lease, for several gateway instances on one database.

A queue row (an outbox's event or mail, a provisioning operation) that is due carries a time
column (`next_attempt_at`) and an attempt counter (`attempts`). Claiming a row is one statement:

    UPDATE t SET next_attempt_at = <now + lease>, attempts = attempts + 1
    WHERE id IN (SELECT id FROM t WHERE <due> ORDER BY … LIMIT n FOR UPDATE SKIP LOCKED)
    RETURNING …

- `FOR UPDATE SKIP LOCKED` (PostgreSQL): two instances claiming at the same moment take disjoint
  rows, neither waits for the other. A row another instance's claim committed meanwhile is
  re-checked against `<due>` by PostgreSQL and dropped (its due time is now in the future).
- The lease: the claimed row is due again only once the lease is over. An instance that dies
  (kill -9, power) holding it simply never finishes it, and another instance claims it then.
- A graceful stop hands its claims back (`release`): their due time becomes now, so another
  instance takes them at once instead of when the lease is over.
- The counter is the fencing token: the claimer finishes the row only `WHERE attempts = <the
  value its claim set>`. An instance that outlived its lease (a long pause) and comes back finds
  the row claimed again by someone else and its late result is dropped instead of overwriting the
  newer claim's. A claim is an attempt begun, so an attempt cut short by a crash is counted too
  (a row that kills every instance that takes it still reaches its attempt limit).

SQLite (one writer at a time, one instance) has no `FOR UPDATE`; SQLAlchemy leaves the clause
out there and the same statement claims under the database's write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


def claimable(table: sa.Table, due: sa.ColumnElement[bool], *, order_by: Sequence[Any], limit: int,
              of: sa.Table | None = None, select_from: Any = None) -> sa.ScalarSelect[Any]:
    """The ids of up to `limit` rows of `table` that are `due` and not locked by another claim
    (the subquery of `claim`). `select_from`: a join when `due` needs other tables; then `of`
    names the table whose rows are locked (the queue's, never the joined ones)."""
    query = sa.select(table.c.id)
    if select_from is not None:
        query = query.select_from(select_from)
    return query.where(due).order_by(*order_by).limit(limit).with_for_update(
        skip_locked=True, of=of).scalar_subquery()


async def claim(conn: AsyncConnection, table: sa.Table, ids: sa.ScalarSelect[Any], *,
                lease_until: datetime, **values: Any) -> list[Any]:
    """Claim the rows `ids` (from `claimable`) until `lease_until`: one statement, returns the
    claimed rows as they are now (their `attempts` is the fencing token), by id."""
    rows = (await conn.execute(table.update().where(table.c.id.in_(ids)).values(
        next_attempt_at=lease_until, attempts=table.c.attempts + 1, **values).returning(*table.c))).all()
    return sorted(rows, key=lambda r: r.id)


async def claim_one(conn: AsyncConnection, table: sa.Table, row_id: int, seen_attempts: int,
                    due: sa.ColumnElement[bool], *, lease_until: datetime) -> Any | None:
    """Claim one row known by id, if it is still as read (`attempts` unchanged) and `due`: a
    compare-and-set, so of several instances trying, one gets it. The claimed row or None."""
    return (await conn.execute(table.update().where(
        table.c.id == row_id, table.c.attempts == seen_attempts, due).values(
        next_attempt_at=lease_until, attempts=table.c.attempts + 1).returning(*table.c))).first()


async def extend(conn: AsyncConnection, table: sa.Table, row_id: int, claimed_attempts: int,
                 lease_until: datetime) -> bool:
    """Move a claimed row's lease on to `lease_until`, while the claim is still this one's
    (for rows claimed in a batch and attempted one after the other). False: it is not ours now."""
    result = await conn.execute(table.update().where(
        table.c.id == row_id, table.c.attempts == claimed_attempts).values(next_attempt_at=lease_until))
    return bool(result.rowcount)


async def finish(conn: AsyncConnection, table: sa.Table, row_id: int, claimed_attempts: int,
                 **values: Any) -> bool:
    """Record the outcome of a claimed row, only while the claim is still this one's (no other
    instance claimed it after the lease ran out). False: the result came too late and is dropped."""
    result = await conn.execute(table.update().where(
        table.c.id == row_id, table.c.attempts == claimed_attempts).values(**values))
    return bool(result.rowcount)


async def release(conn: AsyncConnection, table: sa.Table, claims: dict[int, int], now: datetime,
                  *still: sa.ColumnElement[bool]) -> int:
    """Hand back claimed rows (a graceful stop): `claims` id -> the `attempts` the claim set; each
    row that is still this claim's (and `still`, e.g. not finished) is due again `now`. The attempt
    stays counted (the counter is the fencing token: never set back). How many were handed back."""
    pairs = sorted(claims.items())
    handed = 0
    for i in range(0, len(pairs), 500):  # bounded statements (bind parameters)
        result = await conn.execute(table.update().where(
            sa.tuple_(table.c.id, table.c.attempts).in_(pairs[i:i + 500]), *still).values(next_attempt_at=now))
        handed += int(result.rowcount or 0)
    return handed
