"""Migrations on SQLite: one real transaction, foreign keys off while tables are rebuilt, checked
before the commit; and the repair of what upgrades before this module left behind.

Why foreign keys off: for most ALTERs Alembic rebuilds a SQLite table (batch mode: copy it into
`_alembic_tmp_<table>`, DROP the table, rename the copy). Every store connection runs with
`PRAGMA foreign_keys=ON`, and then dropping a table that other rows point at fails ("FOREIGN KEY
constraint failed": migration 0013 rebuilds han_deliveries, which han_device_states points at).
SQLite's documented procedure (https://www.sqlite.org/lang_altertable.html#otheralter) turns
foreign keys off, which only takes effect outside a transaction, and runs `PRAGMA
foreign_key_check` before committing: an upgrade that really breaks a reference still fails.

Why our own BEGIN: Python's sqlite3 module (legacy transaction control) opens a transaction only
before INSERT/UPDATE/DELETE, so schema changes ran outside any transaction until the first
revision was stamped. A failed upgrade then kept the first revision's schema changes (or batch
mode's copy table) without its stamp, and every later start failed on them ("duplicate column",
"table _alembic_tmp_… already exists"). Here the driver is in autocommit mode (it begins and
commits nothing itself) and we issue BEGIN IMMEDIATE … COMMIT: every revision of one upgrade
commits together or not at all.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

BATCH_COPY_PREFIX = "_alembic_tmp_"

# Revisions whose upgrade only changes the schema (no INSERT/UPDATE/DELETE). An upgrade by the
# runner before this module that started just below one of them and failed later (migration 0013
# with device answers stored) kept that revision's changes committed but not its stamp.
SCHEMA_ONLY_REVISIONS = frozenset({"0006", "0007", "0008", "0009", "0010", "0011"})

SchemaNames = frozenset[tuple[str, ...]]


class ForeignKeyCheckFailed(RuntimeError):
    """The upgrade would leave rows pointing at rows that do not exist; it was rolled back."""

    def __init__(self, broken: Counter[tuple[str, str]]) -> None:
        self.broken = dict(broken)
        shown = "; ".join(f"{n} row(s) of {table} -> missing {parent}" for (table, parent), n in sorted(broken.items()))
        super().__init__(f"the upgrade would break references (PRAGMA foreign_key_check): {shown}; rolled back")


def broken_references(connection: Connection) -> Counter[tuple[str, str]]:
    """How many rows of each (table, referenced table) point at a row that does not exist."""
    return Counter((table, parent) for table, _rowid, parent, _fkid
                   in connection.exec_driver_sql("PRAGMA foreign_key_check").all())


def upgrade_atomically(connection: Connection, run: Callable[[Connection], None]) -> None:
    """Run `run` (the Alembic upgrade) in one transaction, foreign keys off, checked before COMMIT.

    `connection` must be in autocommit mode (SQLAlchemy isolation level "AUTOCOMMIT"), so that
    the pragma is issued outside a transaction and the BEGIN and COMMIT here are the only ones.
    Only references the upgrade breaks make it fail: rows that pointed nowhere before (deleted
    with foreign keys off, e.g. in the sqlite3 shell, where they are off by default) are logged."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        if connection.exec_driver_sql("PRAGMA foreign_keys").scalar() != 0:
            # SQLite ignores the pragma inside a transaction, silently: say so rather than fail later.
            raise RuntimeError("foreign keys are still on: the migration connection is inside a transaction")
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            before = broken_references(connection)
            if before:
                log.warning("rows pointing at missing rows before the upgrade (left as they are): %s",
                            dict(before))
            run(connection)
            broken = broken_references(connection) - before
            if broken:
                raise ForeignKeyCheckFailed(broken)
        except BaseException:
            # SQLite may have rolled back already (e.g. disk full): the original error matters.
            with contextlib.suppress(sa.exc.OperationalError):
                connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def schema_names(connection: Connection) -> SchemaNames:
    """The names in the database's schema: tables, indexes and columns (batch copies left out).

    Names, not the CREATE statements: those depend on the SQLAlchemy version that emitted them."""
    names: set[tuple[str, ...]] = set()
    rows = connection.exec_driver_sql(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index') "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").all()
    for kind, name, table in rows:
        if table.startswith(BATCH_COPY_PREFIX):
            continue
        names.add((kind, table, name))
        if kind == "table":
            for column in connection.exec_driver_sql(f'PRAGMA table_info("{name}")').all():
                names.add(("column", name, column[1]))
    return frozenset(names)


def repair_interrupted_upgrade(connection: Connection, revisions: Sequence[str],
                               schema_at: Callable[[str], SchemaNames]) -> None:
    """Undo what a failed upgrade by the runner before this module left behind (inside the
    upgrade's transaction, before Alembic looks at the database):

    - batch mode's copy tables (`_alembic_tmp_<table>`): a copy made by a failed rebuild, the
      table itself still holds every row; Alembic would fail creating the copy again;
    - a schema-only revision applied but not stamped: stamped when the database's schema is
      exactly that revision's (`schema_at(revision)`), so Alembic goes on from there."""
    tables = set(connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars())
    for name in sorted(t for t in tables if t.startswith(BATCH_COPY_PREFIX)):
        if name.removeprefix(BATCH_COPY_PREFIX) not in tables:  # then the copy may hold the only rows
            raise RuntimeError(f"{name} exists but {name.removeprefix(BATCH_COPY_PREFIX)} does not: "
                               "an upgrade stopped inside a table rebuild; restore the backup")
        log.warning("dropping %s, left by an upgrade that failed (the table it copies is intact)", name)
        connection.exec_driver_sql(f'DROP TABLE "{name}"')
    if "alembic_version" not in tables:  # a new database
        return
    stamped = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    if stamped not in revisions or stamped == revisions[-1]:
        return
    following = revisions[revisions.index(stamped) + 1]
    if following in SCHEMA_ONLY_REVISIONS and schema_names(connection) == schema_at(following):
        log.warning("the database is stamped %s but has revision %s's schema (an upgrade that failed "
                    "kept it): stamping %s", stamped, following, following)
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = ?", (following,))
