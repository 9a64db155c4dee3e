"""The gateway-wide SE id counter (table `se_id_counters`): message ids and issuer event ids share
it, so every id the gateway ever sends into any home is unique and increasing."""

from __future__ import annotations

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
    result = await conn.execute(se_id_counters.update().where(se_id_counters.c.name == name).values(
        value=se_id_counters.c.value + 1).returning(se_id_counters.c.value))
    value = result.scalar()
    if value is None:  # a database made without the migration's seed row
        await conn.execute(se_id_counters.insert().values(name=name, value=SE_ID_START))
        return SE_ID_START
    return int(value)


async def allocate_se_ids(conn: AsyncConnection, n: int) -> list[int]:
    """`n` consecutive ids of the counter in one atomic UPDATE … RETURNING (`allocate_se_id`
    extended to a group of requests committed together)."""
    value = (await conn.execute(se_id_counters.update().where(se_id_counters.c.name == "se_id").values(
        value=se_id_counters.c.value + n).returning(se_id_counters.c.value))).scalar()
    if value is None:  # a database made without the migration's seed row
        first = await allocate_se_id(conn)
        rest = await allocate_se_ids(conn, n - 1) if n > 1 else []
        return [first, *rest]
    return list(range(int(value) - n + 1, int(value) + 1))
