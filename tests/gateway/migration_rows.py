"""Rows in every table of a database at any revision, a snapshot of them, and the references that
point nowhere: for tests that upgrade databases holding data (SQLite and PostgreSQL).

The rows are generated from the reflected schema of the revision (so they fit every revision as it
was, with every column filled), and each row of a table that references another points at a row
of that table: a migration that rebuilds a table others point at meets real references.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import migrate

ROWS_PER_TABLE = 3
SKIPPED = frozenset({"alembic_version"})  # Alembic's own: changes with every revision

Snapshot = dict[str, list[dict[str, Any]]]


def _reflect(connection: Connection) -> sa.MetaData:
    metadata = sa.MetaData()
    metadata.reflect(connection)
    return metadata


def _value(table: sa.Table, column: sa.Column[Any], row: int, parents: dict[str, list[dict[str, Any]]]) -> Any:
    for fk in column.foreign_keys:
        return parents[fk.column.table.name][row][fk.column.name]
    position = list(table.columns).index(column)
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return row % 2 == 0
    if isinstance(kind, sa.DateTime):
        at = datetime(2026, 1, 15, 12, 0, tzinfo=UTC) + timedelta(minutes=row, seconds=position)
        return at if kind.timezone else at.replace(tzinfo=None)
    if isinstance(kind, sa.BigInteger):
        return 5_000_000_000 + 1000 * row + position
    if isinstance(kind, sa.Integer):
        return 1 + row if column.primary_key else 100 * (row + 1) + position
    if isinstance(kind, sa.Float):
        return 1.5e9 + 1000 * row + position + 0.25  # a fraction: a column that rounds would show it
    if isinstance(kind, sa.LargeBinary):
        return bytes([row, position]) * 8
    if isinstance(kind, sa.String) and kind.length is not None:
        return (f"{row}" + column.name)[:kind.length]
    if isinstance(kind, sa.String):  # TEXT
        return f'{{"row": {row}, "column": "{column.name}"}}'
    raise AssertionError(f"no test value for {table.name}.{column.name} of type {kind!r}: add one")


def fill_every_table(connection: Connection) -> dict[str, int]:
    """ROWS_PER_TABLE rows in every table, parents first; how many rows each table got."""
    metadata = _reflect(connection)
    written: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if table.name in SKIPPED:
            continue
        rows = [{c.name: _value(table, c, i, written) for c in table.columns} for i in range(ROWS_PER_TABLE)]
        connection.execute(table.insert(), rows)
        written[table.name] = rows
    return {name: len(rows) for name, rows in written.items()}


def snapshot(connection: Connection) -> Snapshot:
    """Every row of every table, in primary key order, as column -> value."""
    metadata = _reflect(connection)
    found: Snapshot = {}
    for table in metadata.sorted_tables:
        if table.name in SKIPPED:
            continue
        order = list(table.primary_key.columns) or list(table.columns)
        found[table.name] = [dict(r._mapping) for r in connection.execute(table.select().order_by(*order))]
    return found


def kept(before: Snapshot, after: Snapshot, table: str) -> list[dict[str, Any]]:
    """The table's rows after the upgrade, with only the columns it had before."""
    columns = set(before[table][0]) if before[table] else set()
    return [{k: v for k, v in row.items() if k in columns} for row in after.get(table, [])]


def broken_references(connection: Connection) -> list[str]:
    """Every reference whose row does not exist, as 'table.column=value -> parent' (any back-end)."""
    metadata = _reflect(connection)
    broken: list[str] = []
    for table in metadata.sorted_tables:
        for fk in table.foreign_keys:
            parent = fk.column.table
            child = fk.parent
            missing = sa.select(child).where(child.is_not(None), ~sa.exists().where(fk.column == child))
            broken += [f"{table.name}.{child.name}={v} -> {parent.name}" for v in connection.execute(missing).scalars()]
    if connection.dialect.name == "sqlite":
        broken += [f"PRAGMA foreign_key_check: {tuple(r)}"
                   for r in connection.exec_driver_sql("PRAGMA foreign_key_check").all()]
    return broken


async def upgrade_as_released(engine: AsyncEngine, revision: str) -> None:
    """How `migrate.upgrade` ran up to migration 0013's fix: Alembic inside `engine.begin()`, with
    the store's `PRAGMA foreign_keys=ON`, Python's sqlite3 opening the transaction only at the
    first INSERT/UPDATE/DELETE. Used to make the databases that upgrade left behind."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(migrate.alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
