"""Price acknowledgements that never come (issue 13): han_deliveries.ack_due_at.

A price or block period that asks its devices to acknowledge (Price Control / Block Period Control
bit 0) gets, when it reaches its meter, the time by which the acknowledgements must have come
(`[pipeline] price_ack_minutes` later); the dispatcher's sweep then decides the delivery
(`acknowledged`, `partly_acknowledged`, `no_acknowledgement`) and clears the column. A partial
index holds only the rows still awaited, so the sweep never reads the delivered rows of a fan-out.
A plain ADD COLUMN on both back-ends (no table rebuild).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("han_deliveries", sa.Column("ack_due_at", UtcDateTime, nullable=True))
    awaited = sa.text("ack_due_at IS NOT NULL")
    op.create_index("ix_han_deliveries_ack_due_at", "han_deliveries", ["ack_due_at"],
                    sqlite_where=awaited, postgresql_where=awaited)


def downgrade() -> None:
    # Idempotent: SQLite's driver commits DDL at once, so when an older revision's downgrade fails
    # after this one ran (0014 refuses while the operator's requests exist), the version table still
    # says 0015 and the next attempt runs this again on a table that no longer has the column.
    op.execute("DROP INDEX IF EXISTS ix_han_deliveries_ack_due_at")
    bind = op.get_bind()
    if "ack_due_at" not in {c["name"] for c in sa.inspect(bind).get_columns("han_deliveries")}:
        return
    if bind.dialect.name == "sqlite":  # SQLite >= 3.35 drops a column in place
        op.execute("ALTER TABLE han_deliveries DROP COLUMN ack_due_at")
    else:
        op.drop_column("han_deliveries", "ack_due_at")
