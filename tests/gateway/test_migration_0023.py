"""Migration 0023 on PostgreSQL: SE ids come from the sequence `se_id_seq`, which starts after the
last id the counter row gave (no id is ever given twice across the upgrade), and a downgrade
writes the sequence's last value back into the counter, so the older code goes on above it. On
SQLite nothing changes (the counter row stays)."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import migrate
from gateway.store.se_ids import allocate_se_id, allocate_se_ids
from gateway.store.store import make_engine
from tests.gateway.conftest import pg_url

__all__ = ["pg_url"]


async def test_ids_continue_across_the_upgrade_and_the_downgrade(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        await migrate.upgrade(engine, "0022")
        async with engine.begin() as conn:  # ids the older code gave: the counter row
            last = (await conn.execute(sa.text(
                "UPDATE se_id_counters SET value = value + 3 WHERE name = 'se_id' RETURNING value"))).scalar_one()
            before = [last - 2, last - 1, last]
            assert (await conn.execute(sa.text("SELECT to_regclass('se_id_seq')"))).scalar() is None
        await migrate.upgrade(engine, "head")
        async with engine.begin() as conn:
            after = await allocate_se_ids(conn, 4)
            one = await allocate_se_id(conn)
        assert after == list(range(before[-1] + 1, before[-1] + 5)) and one == after[-1] + 1
        async with engine.begin() as conn:  # the counter row is left as it was: the sequence counts
            counter = (await conn.execute(sa.text("SELECT value FROM se_id_counters WHERE name = 'se_id'"))).scalar()
        assert counter == before[-1]
        await migrate.downgrade(engine, "0022")
        async with engine.begin() as conn:
            assert (await conn.execute(sa.text("SELECT to_regclass('se_id_seq')"))).scalar() is None
            again = (await conn.execute(sa.text(  # the older code's next id: above every one the sequence gave
                "UPDATE se_id_counters SET value = value + 1 WHERE name = 'se_id' RETURNING value"))).scalar_one()
        assert again == one + 1
    finally:
        await engine.dispose()


async def test_a_rolled_back_transaction_never_makes_an_id_given_twice(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        await migrate.upgrade(engine, "head")
        async with engine.connect() as conn:
            await conn.begin()
            lost = await allocate_se_id(conn)
            await conn.rollback()  # a failed request: its id is skipped, not given again
        async with engine.begin() as c2:
            assert await allocate_se_id(c2) > lost
    finally:
        await engine.dispose()
