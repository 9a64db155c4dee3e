"""The gateway-wide SE id counter: message ids and issuer event ids share it, so every id the
gateway ever sends into any home is unique and increasing.

On PostgreSQL it is the sequence `se_id_seq` (migration 0023): `nextval` holds no lock to the
commit, so instances do not queue on one row. Ids are unique; per meter they increase in the order
its deliveries are queued because a request takes its premises' advisory locks
(`advisory_locks.lock_premises`) before its ids: two requests to one meter take theirs one after
the other, each to its commit. On SQLite (one writer at a time) it is the row of table
`se_id_counters`, updated in the caller's transaction."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.schema import se_id_counters

# The counters start above small ids other systems on a meter may already have used.
SE_ID_START = 0x10000


async def allocate_se_id(conn: AsyncConnection, name: str = "se_id") -> int:
    """The next id of the counter, in the caller's transaction. One atomic UPDATE … RETURNING:
    concurrent requests never read the same value (PostgreSQL locks the row to the commit, SQLite has
    one writer), so ids increase in commit order. Load-control arbitration does not rely on it: it
    takes its premises' advisory locks first (gateway/store/advisory_locks.py), which a fan-out
    page, allocating no id, takes too."""
    if conn.dialect.name == "postgresql" and name == "se_id":
        return (await allocate_se_ids(conn, 1))[0]
    result = await conn.execute(se_id_counters.update().where(se_id_counters.c.name == name).values(
        value=se_id_counters.c.value + 1).returning(se_id_counters.c.value))
    value = result.scalar()
    if value is None:  # a database made without the migration's seed row
        await conn.execute(se_id_counters.insert().values(name=name, value=SE_ID_START))
        return SE_ID_START
    return int(value)


async def allocate_se_ids(conn: AsyncConnection, n: int) -> list[int]:
    """`n` consecutive ids of the counter in one atomic UPDATE … RETURNING (`allocate_se_id`
    extended to a group of requests committed together); on PostgreSQL `n` values of the
    sequence, in increasing order (not always consecutive: other instances take values meanwhile)."""
    if conn.dialect.name == "postgresql":
        rows = await conn.execute(sa.text("SELECT nextval('se_id_seq') FROM generate_series(1, :n)"), {"n": n})
        return sorted(int(r[0]) for r in rows)
    value = (await conn.execute(se_id_counters.update().where(se_id_counters.c.name == "se_id").values(
        value=se_id_counters.c.value + n).returning(se_id_counters.c.value))).scalar()
    if value is None:  # a database made without the migration's seed row
        first = await allocate_se_id(conn)
        rest = await allocate_se_ids(conn, n - 1) if n > 1 else []
        return [first, *rest]
    return list(range(int(value) - n + 1, int(value) + 1))
