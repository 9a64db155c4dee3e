"""Apply the Alembic migrations to an async engine (SQLite or PostgreSQL).

An upgrade is one transaction on both: PostgreSQL has transactional DDL; on SQLite
`sqlite_upgrade` issues the transaction itself and turns foreign keys off while tables are rebuilt.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import sqlite_upgrade

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision`; runs in a worker thread via run_sync (never blocks)."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    def _repair_and_upgrade(connection: Connection) -> None:
        sqlite_upgrade.repair_interrupted_upgrade(connection, revisions(), _sqlite_schema_at)
        _upgrade(connection)

    def _upgrade_sqlite(connection: Connection) -> None:
        # Every start migrates: when there is nothing to do, skip the transaction and the
        # foreign key scans (a full pass over every table with references).
        if _current(connection) != _target(revision):
            sqlite_upgrade.upgrade_atomically(connection, _repair_and_upgrade)

    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # BEGIN/COMMIT are ours
            await conn.run_sync(_upgrade_sqlite)
        return
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the database back to `revision`. On SQLite in one transaction with foreign keys off and
    checked before COMMIT, as an upgrade: a downgrade that rebuilds a table other tables' rows
    point at (0017 gives `han_deliveries` its foreign key back) cannot run with them on."""

    def _downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # BEGIN/COMMIT are ours
            await conn.run_sync(lambda c: sqlite_upgrade.upgrade_atomically(c, _downgrade))
        return
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade)


def _sqlite_schema_at(revision: str) -> sqlite_upgrade.SchemaNames:
    """The schema names of a new SQLite database migrated to `revision` (in memory)."""
    reference = sa.create_engine("sqlite://")
    try:
        with reference.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
            return sqlite_upgrade.schema_names(connection)
    finally:
        reference.dispose()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _target(revision: str) -> str | None:
    script = ScriptDirectory.from_config(alembic_config())
    found = script.get_revision(revision)  # resolves "head"
    return found.revision if found is not None else None


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
