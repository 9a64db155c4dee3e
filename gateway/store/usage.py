"""Usage reads (table `usage_reads`): bulk upsert of interval reads, keyset reads of a premise's
period, and what is stored (for finding gaps).

Re-sent reads deduplicate on the primary key (premise, channel, interval start): the upsert
replaces the stored value, quality, source and time received — a head-end that sends a day again,
or revises an estimate to an actual, leaves one row with its newest word.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.schema import usage_reads

# Rows per statement: 8 columns each, under the 32,766 bind parameters SQLite and asyncpg allow
# (executemany binds per row, but one chunk is also one transaction's worth of work).
UPSERT_CHUNK = 4000
KEY = ("esi_id", "channel", "interval_start")
UPDATED = ("length_s", "value_wh", "quality", "source", "received_at")


class StoredRead(NamedTuple):
    esi_id: str
    channel: str
    interval_start: datetime
    length_s: int
    value_wh: int
    quality: str
    source: str
    received_at: datetime


def _upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(usage_reads)
    return stmt.on_conflict_do_update(index_elements=list(KEY),
                                      set_={c: stmt.excluded[c] for c in UPDATED})


class UsageStore:
    """Usage reads (mixed into `Store`)."""

    engine: AsyncEngine

    async def upsert_usage_reads(self, rows: Sequence[StoredRead]) -> int:
        """Insert or replace `rows` (chunks of UPSERT_CHUNK, each its own transaction, so a long
        backfill never holds SQLite's one writer for long); the number of rows written."""
        if not rows:
            return 0
        dialect = self.engine.dialect
        compiled = _upsert(dialect.name).compile(dialect=dialect, column_keys=list(StoredRead._fields))
        order = compiled.positiontup
        if not compiled.positional or order is None or sorted(order) != sorted(StoredRead._fields):
            raise RuntimeError(f"usage upsert: unexpected parameter order {order!r}")  # a dialect change
        # One compiled statement, bound per row as a plain tuple: SQLAlchemy's per-row parameter
        # processing was most of an upsert's cost (measured: benchmarks/usage.py). The two datetime
        # columns go through the column type's own bind conversion (UtcDateTime: naive UTC on SQLite).
        index = [StoredRead._fields.index(k) for k in order]
        convert = [usage_reads.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order]
        for at in range(0, len(rows), UPSERT_CHUNK):
            params = [tuple(row[i] if c is None else c(row[i]) for i, c in zip(index, convert, strict=True))
                      for row in rows[at:at + UPSERT_CHUNK]]
            async with self.engine.begin() as conn:
                await conn.exec_driver_sql(compiled.string, params)
        return len(rows)

    async def usage_page(self, esi_id: str, start: datetime, end: datetime, *,
                         after: tuple[datetime, str] | None = None, limit: int = 1000) -> list[StoredRead]:
        """The premise's reads starting in [start, end), by (interval start, channel), after the
        keyset position `after`; at most `limit`."""
        query = sa.select(*usage_reads.c).where(
            usage_reads.c.esi_id == esi_id, usage_reads.c.interval_start >= start,
            usage_reads.c.interval_start < end)
        if after is not None:
            at, channel = after
            query = query.where(sa.or_(usage_reads.c.interval_start > at, sa.and_(
                usage_reads.c.interval_start == at, usage_reads.c.channel > channel)))
        query = query.order_by(usage_reads.c.interval_start, usage_reads.c.channel).limit(limit)
        async with self.engine.connect() as conn:
            return [StoredRead(*row) for row in (await conn.execute(query)).all()]

    async def usage_channel_page(self, esi_id: str, channel: str, start: datetime, end: datetime, *,
                                 after: datetime | None = None, limit: int = 5000) -> list[StoredRead]:
        """One channel of the premise's reads starting in [start, end), by interval start, after
        `after`; at most `limit` (a range of the primary key: the Green Button writer's order)."""
        query = sa.select(*usage_reads.c).where(
            usage_reads.c.esi_id == esi_id, usage_reads.c.channel == channel,
            usage_reads.c.interval_start >= start, usage_reads.c.interval_start < end)
        if after is not None:
            query = query.where(usage_reads.c.interval_start > after)
        query = query.order_by(usage_reads.c.interval_start).limit(limit)
        async with self.engine.connect() as conn:
            return [StoredRead(*row) for row in (await conn.execute(query)).all()]

    async def usage_starts(self, esi_id: str, channel: str, start: datetime, end: datetime) -> list[datetime]:
        """The interval starts stored for the premise's channel in [start, end), in order."""
        query = sa.select(usage_reads.c.interval_start).where(
            usage_reads.c.esi_id == esi_id, usage_reads.c.channel == channel,
            usage_reads.c.interval_start >= start, usage_reads.c.interval_start < end,
        ).order_by(usage_reads.c.interval_start)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def count_usage_in(self, esi_id: str, channel: str, start: datetime, end: datetime) -> int:
        """How many intervals of the premise's channel start in [start, end) (an index range count)."""
        query = sa.select(sa.func.count()).select_from(usage_reads).where(
            usage_reads.c.esi_id == esi_id, usage_reads.c.channel == channel,
            usage_reads.c.interval_start >= start, usage_reads.c.interval_start < end)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def count_usage_reads(self, esi_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(usage_reads)
        if esi_id is not None:
            query = query.where(usage_reads.c.esi_id == esi_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
