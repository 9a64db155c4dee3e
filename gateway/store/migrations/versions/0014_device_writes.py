"""Device writes (issue 13): the operator's own HAN requests, and a delivery addressed to one device.

- han_requests.party_id and han_deliveries.party_id become nullable: NULL is the operator (as in
  han_devices and han_provisioning_ops). An operator sets a device's utility enrollment group
  through the same pipeline as a third party, and its request belongs to no party.
- han_deliveries.target_eui64 (nullable): the one device a delivery is for (a set_enrollment_group
  request, ZCL Write Attributes), 16 hex digits as the API writes it; NULL for every delivery
  addressed to a premise's capable devices, as before. A partial index holds the device writes
  alone, so finding their answers never reads the fan-out rows.

SQLite cannot drop a NOT NULL in place, and rebuilding these tables (Alembic's batch mode: copy,
drop, rename) is refused while rows of other tables point at them with foreign keys enforced
(han_deliveries -> han_requests, han_device_states -> han_deliveries). So on SQLite the NOT NULL is
removed with the procedure SQLite documents for removing NOT NULL constraints (lang_altertable.html,
"simpler procedure": edit the stored CREATE TABLE, bump schema_version), which rewrites no row;
PostgreSQL does an ALTER COLUMN … DROP NOT NULL.

Revision ID: 0014
Revises: 0013
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

NULLABLE = (("han_requests", "party_id"), ("han_deliveries", "party_id"))


def _sqlite_set_not_null(table: str, column: str, not_null: bool) -> None:
    """Add or remove NOT NULL on an INTEGER column by editing the stored schema in place."""
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                       {"t": table}).scalar_one()
    if not_null:
        edited, count = re.subn(rf"(\n\s*{column} INTEGER)(,)", r"\1 NOT NULL\2", sql)
    else:
        edited, count = re.subn(rf"(\n\s*{column} INTEGER) NOT NULL(,)", r"\1\2", sql)
    if count != 1:
        raise RuntimeError(f"{table}.{column}: unexpected table definition, not changed: {sql}")
    version = int(bind.execute(sa.text("PRAGMA schema_version")).scalar_one())
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
                 {"sql": edited, "t": table})
    bind.execute(sa.text(f"PRAGMA schema_version = {version + 1}"))  # other connections re-read it
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # A plain ALTER TABLE … ADD COLUMN on both back-ends (no table rebuild).
    op.add_column("han_deliveries", sa.Column("target_eui64", sa.String(16), nullable=True))
    only_writes = sa.text("target_eui64 IS NOT NULL")
    op.create_index("ix_han_deliveries_target_eui64", "han_deliveries", ["target_eui64"],
                    sqlite_where=only_writes, postgresql_where=only_writes)
    for table, column in NULLABLE:
        if sqlite:
            _sqlite_set_not_null(table, column, not_null=False)
        else:
            op.alter_column(table, column, existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table, column in NULLABLE:
        if bind.execute(sa.text(f"SELECT 1 FROM {table} WHERE {column} IS NULL LIMIT 1")).first():
            raise RuntimeError(f"{table} holds the operator's requests ({column} NULL): remove them before "
                               "downgrading below 0014")
    sqlite = bind.dialect.name == "sqlite"
    for table, column in NULLABLE:
        if sqlite:
            _sqlite_set_not_null(table, column, not_null=True)
        else:
            op.alter_column(table, column, existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_han_deliveries_target_eui64", table_name="han_deliveries")
    if sqlite:  # SQLite >= 3.35 drops a column in place (batch mode would rebuild the table)
        op.execute("ALTER TABLE han_deliveries DROP COLUMN target_eui64")
    else:
        op.drop_column("han_deliveries", "target_eui64")
