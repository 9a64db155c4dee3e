"""The one-trip aiosqlite cursor behaves as SQLAlchemy's own: rows, RETURNING, rowcount,
lastrowid, executemany, errors — and the aiosqlite internals it relies on are there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest
import sqlalchemy as sa

from gateway.store.sqlite_driver import DRIVER, OneTripCursor
from gateway.store.store import make_engine

items = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(20), nullable=False, unique=True))


def test_aiosqlite_internals_it_uses_exist() -> None:
    assert callable(aiosqlite.Connection._execute)
    assert isinstance(aiosqlite.Connection._conn, property)


async def test_statements_through_the_one_trip_cursor(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    assert engine.url.drivername == f"sqlite+{DRIVER}" and engine.dialect.name == "sqlite"
    try:
        async with engine.begin() as conn:
            await conn.run_sync(items.metadata.create_all)
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, aiosqlite.Connection)
            result = await conn.execute(items.insert().values(name="a"))
            assert result.inserted_primary_key == (1,)  # lastrowid
            await conn.execute(items.insert(), [{"name": "b"}, {"name": "c"}])  # executemany
            returned = (await conn.execute(items.insert().returning(items.c.id, items.c.name),
                                           [{"name": "d"}, {"name": "e"}])).all()
            assert sorted(returned) == [(4, "d"), (5, "e")]
            updated = await conn.execute(items.update().where(items.c.id > 2).values(name=items.c.name + "!"))
            assert updated.rowcount == 3
            assert (await conn.execute(sa.select(items.c.name).order_by(items.c.id))).scalars().all() == [
                "a", "b", "c!", "d!", "e!"]
            assert (await conn.execute(sa.select(items).where(items.c.id == 99))).first() is None
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(items.insert().values(name="a"))
        async with engine.connect() as conn:  # the failed transaction left nothing behind
            assert (await conn.execute(sa.select(sa.func.count()).select_from(items))).scalar_one() == 5
            dbapi_cursor = (await conn.get_raw_connection()).dbapi_connection.cursor()
            assert isinstance(dbapi_cursor, OneTripCursor)

        async def reader(i: int) -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(sa.select(items.c.id).where(items.c.name == "b"))).scalar_one())

        assert set(await asyncio.gather(*(reader(i) for i in range(30)))) == {2}
    finally:
        await engine.dispose()
