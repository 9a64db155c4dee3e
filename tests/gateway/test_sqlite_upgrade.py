"""Upgrades on SQLite (gateway/store/sqlite_upgrade.py): all or nothing, foreign keys off while
tables are rebuilt but no reference broken by the upgrade, and the databases that the runner
before migration 0013's fix left behind (a failed upgrade kept part of a revision) finished."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from gateway.store import migrate, sqlite_upgrade
from gateway.store.schema import metadata
from gateway.store.store import make_engine
from tests.gateway.migration_rows import broken_references, fill_every_table, kept, snapshot, upgrade_as_released

REVISIONS = migrate.revisions()


def _diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata))


def _schema(connection: Connection) -> list[tuple[str, ...]]:
    return [tuple(r) for r in connection.exec_driver_sql("SELECT type, name, sql FROM sqlite_master ORDER BY name")]


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"


async def test_an_upgrade_that_fails_changes_nothing(tmp_path: Path) -> None:
    """0009's columns, 0010's indexes fail on an index an operator made by hand: nothing of 0009
    stays, the stamp stays 0008, and the pooled connection has its foreign keys back on."""
    engine = make_engine(_url(tmp_path))
    try:
        await migrate.upgrade(engine, "0008")
        async with engine.begin() as conn:
            await conn.run_sync(fill_every_table)
            await conn.execute(sa.text("CREATE INDEX ix_agreements_updated_at ON parties (created_at)"))
            schema = await conn.run_sync(_schema)
            before = await conn.run_sync(snapshot)
        with pytest.raises(sa.exc.OperationalError, match="ix_agreements_updated_at already exists"):
            await migrate.upgrade(engine, "head")
        assert await migrate.current_revision(engine) == "0008"
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema) == schema
            assert await conn.run_sync(snapshot) == before
            assert (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()


def _delete_a_delivery(connection: Connection) -> None:
    connection.exec_driver_sql("DELETE FROM han_deliveries WHERE id = 1")


async def test_an_upgrade_that_breaks_a_reference_is_rolled_back(tmp_path: Path) -> None:
    engine = make_engine(_url(tmp_path))
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(fill_every_table)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(sqlite_upgrade.ForeignKeyCheckFailed,
                               match=r"1 row\(s\) of han_device_states -> missing han_deliveries") as failed:
                await conn.run_sync(sqlite_upgrade.upgrade_atomically, _delete_a_delivery)
        assert failed.value.broken == {("han_device_states", "han_deliveries"): 1}
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM han_deliveries WHERE id = 1"))).scalar() == 1
            assert (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_rows_that_pointed_nowhere_before_do_not_stop_the_upgrade(tmp_path: Path) -> None:
    """A device answer whose delivery was deleted in the sqlite3 shell (foreign keys off there by
    default) is the operator's: the upgrade goes on and leaves it as it is."""
    engine = make_engine(_url(tmp_path))
    try:
        await migrate.upgrade(engine, "0012")
        async with engine.begin() as conn:
            await conn.run_sync(fill_every_table)
        with sqlite3.connect(tmp_path / "g.db") as shell:
            shell.execute("DELETE FROM han_deliveries WHERE id = 3")
        shell.close()
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == REVISIONS[-1]
        async with engine.connect() as conn:
            assert await conn.run_sync(broken_references) == [
                "han_device_states.delivery_id=3 -> han_deliveries",
                "PRAGMA foreign_key_check: ('han_device_states', 3, 'han_deliveries', 0)"]
    finally:
        await engine.dispose()


# Device answers (han_device_states) exist from 0005; 0013 is the revision that failed.
@pytest.mark.parametrize("start", [r for r in REVISIONS if "0005" <= r < "0013"])
async def test_a_database_the_failed_0013_upgrade_left_behind_is_finished(
        tmp_path: Path, start: str, caplog: pytest.LogCaptureFixture) -> None:
    """The upgrade as released fails on 0013's rebuild once device answers exist, leaving the
    first revision it applied half done (from 0012: batch mode's copy table; from 0005-0010 the
    next revision's schema without its stamp). The fixed upgrade finishes it with every row."""
    engine = make_engine(_url(tmp_path))
    try:
        await migrate.upgrade(engine, start)
        async with engine.begin() as conn:
            await conn.run_sync(fill_every_table)
            before = await conn.run_sync(snapshot)
        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY constraint failed"):
            await upgrade_as_released(engine, "head")
        assert await migrate.current_revision(engine) == start
        with caplog.at_level(logging.WARNING, logger="gateway.store.sqlite_upgrade"):
            await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == REVISIONS[-1]
        said = " | ".join(r.getMessage() for r in caplog.records if r.name == "gateway.store.sqlite_upgrade")
        if start == "0011":  # 0012 only updates rows: that failed upgrade left nothing behind
            assert said == ""
        elif start == "0012":
            assert said.startswith("dropping _alembic_tmp_han_deliveries")
        else:
            assert f"but has revision {REVISIONS[REVISIONS.index(start) + 1]}'s schema" in said
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert await conn.run_sync(broken_references) == []
            copies = (await conn.execute(sa.text(
                "SELECT name FROM sqlite_master WHERE name LIKE '\\_alembic\\_tmp\\_%' ESCAPE '\\'"))).all()
            assert copies == []
            after = await conn.run_sync(snapshot)
        for table in before:
            if table != "idempotency_keys" or start >= "0011":  # 0011 empties it (a cache)
                assert kept(before, after, table) == before[table], table
    finally:
        await engine.dispose()


async def test_a_start_with_nothing_to_migrate_does_not_wait_for_the_writer(tmp_path: Path) -> None:
    """Every `hangw serve` and admin command migrates first: at head, that is a read only, even
    while another process holds the write lock."""
    engine = make_engine(_url(tmp_path))
    try:
        await migrate.upgrade(engine)
        writer = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            await migrate.upgrade(engine)  # busy_timeout is 5 s: waiting would show as a lock error
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    finally:
        await engine.dispose()


async def test_a_copy_table_without_its_table_stops_the_upgrade(tmp_path: Path) -> None:
    """A `_alembic_tmp_` copy whose table is gone may hold the only rows: not dropped, not guessed."""
    engine = make_engine(_url(tmp_path))
    try:
        await migrate.upgrade(engine, "0012")
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE _alembic_tmp_meter_reads (id INTEGER PRIMARY KEY)"))
        with pytest.raises(RuntimeError, match="_alembic_tmp_meter_reads exists but meter_reads does not"):
            await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == "0012"
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text(
                "SELECT count(*) FROM sqlite_master WHERE name = '_alembic_tmp_meter_reads'"))).scalar() == 1
    finally:
        await engine.dispose()
