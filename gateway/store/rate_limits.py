"""Per-party request buckets in the database (table `rate_limit_buckets`), shared by every gateway
instance on it: the sum of what all instances let through stays within the party's rate and burst.

GCRA (the generic cell rate algorithm, equivalent to a token bucket of `burst` tokens refilled at
`rate` a second): a bucket is one number, its theoretical arrival time `tat`; a request at `now` is
let in when `max(tat, now) + 1/rate - now <= burst/rate`, and then moves `tat` on by `1/rate`.
One atomic `INSERT … ON CONFLICT DO UPDATE … RETURNING` per request decides and stores it: the
row lock orders concurrent requests of one party, whichever instance they reach, and no request
ever reads a value another is about to change.

The clock is the database's (`now()`, the statement's transaction start): every instance measures
with the same clock, so skew between the gateways' own clocks cannot widen the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

# Seconds since the epoch by the database's clock, stable within the statement.
_NOW = {
    "postgresql": "extract(epoch FROM now())::float8",
    # 'now' is stable within one SQLite statement too (julianday keeps milliseconds).
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}

_TAKE = """
INSERT INTO rate_limit_buckets AS b (party_id, tat, allowed)
VALUES (:party_id, {now} + :interval, true)
ON CONFLICT (party_id) DO UPDATE SET
    allowed = max2(b.tat, {now}) + :interval - {now} <= :capacity,
    tat = CASE WHEN max2(b.tat, {now}) + :interval - {now} <= :capacity
               THEN max2(b.tat, {now}) + :interval ELSE b.tat END
RETURNING allowed, tat - {now} AS ahead
"""


@dataclass(frozen=True)
class Taken:
    allowed: bool
    ahead: float  # seconds the bucket's tat is ahead of now: how long until it is full again


def _statement(dialect: str) -> sa.TextClause:
    # PostgreSQL's GREATEST and SQLite's two-argument MAX are the same function.
    greatest = "GREATEST" if dialect == "postgresql" else "MAX"
    sql = _TAKE.replace("max2", greatest).format(now=_NOW[dialect])
    if dialect == "sqlite":
        sql = sql.replace("true", "1")
    return sa.text(sql)


async def take(engine: AsyncEngine, party_id: int, rate_per_second: float, burst: int) -> Taken:
    """Spend one request of `party_id`'s shared bucket if there is one; in a transaction of its own
    (never an API request's unit of work: a refused request must still count)."""
    interval = 1.0 / rate_per_second
    # A millionth of a request of slack, so that float rounding never refuses the burst's last one.
    params = {"party_id": party_id, "interval": interval, "capacity": (burst + 1e-6) * interval}
    statement = _statement(engine.dialect.name)
    if engine.dialect.name == "postgresql":
        # One statement, its own transaction: autocommit saves the BEGIN and COMMIT round trips.
        async with AsyncEngine.connect(engine) as pooled:
            conn = await pooled.execution_options(isolation_level="AUTOCOMMIT")
            row = (await conn.execute(statement, params)).one()
    else:
        async with engine.begin() as conn:  # SQLite: behind the one writer
            row = (await conn.execute(statement, params)).one()
    return Taken(bool(row.allowed), max(0.0, float(row.ahead)))

