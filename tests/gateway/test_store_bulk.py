"""`insert_many` (the store's fast executemany) stores exactly what a plain `conn.execute(insert)`
stores, byte for byte as the database keeps it, on both back-ends: a whole-second timestamp on
SQLite was once kept as '… 00:00:00' beside '….000000' (string comparisons then disagreed)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.bulk import insert_many
from gateway.store.schema import UtcDateTime

META = sa.MetaData()
TABLE = sa.Table(
    "bulk_probe", META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UtcDateTime),
    sa.Column("name", sa.String(20)),
    sa.Column("flag", sa.Boolean),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("doc", sa.JSON),
)
ROW = {"at": datetime(2026, 1, 1, tzinfo=UTC), "name": "x", "flag": True, "blob": b"\x00\x01", "doc": {"a": [1]}}
ROW2 = {"at": datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC), "name": None, "flag": False, "blob": None,
        "doc": None}


async def test_insert_many_stores_what_a_plain_insert_stores_on_sqlite() -> None:
    await _compare("sqlite+aiosqlite://")


async def test_insert_many_stores_what_a_plain_insert_stores_on_postgresql(pg_url: str) -> None:
    await _compare(pg_url)


async def _compare(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(META.create_all)
            await conn.execute(TABLE.insert(), [{"id": 1, **ROW}, {"id": 2, **ROW2}])
            await insert_many(conn, TABLE, [{"id": 11, **ROW}, {"id": 12, **ROW2}])
            cast = "CAST(at AS TEXT), name, flag, blob, CAST(doc AS TEXT)"
            raw = {r[0]: r[1:] for r in (await conn.exec_driver_sql(f"SELECT id, {cast} FROM bulk_probe")).all()}
            assert raw[11] == raw[1] and raw[12] == raw[2], raw
            # Read back through the type: the same aware datetimes.
            rows = {r.id: r for r in (await conn.execute(sa.select(TABLE))).all()}
            assert rows[11].at == ROW["at"] and rows[12].at == ROW2["at"]
            # And string comparisons agree: the whole-second value sorts before the later one.
            ordered = (await conn.exec_driver_sql("SELECT id FROM bulk_probe ORDER BY at, id")).scalars().all()
            assert ordered == [1, 11, 2, 12]
    finally:
        await engine.dispose()
