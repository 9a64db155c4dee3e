"""Energy Data (issue 16): the terms of energy_data agreements, and the stored usage reads.

`agreements` gains four nullable columns (a plain ADD COLUMN on both back-ends, no table rebuild):
data_mode (one_time | continuous), data_interval (15min | daily | monthly) and a one-time
agreement's period (data_from, data_to). `usage_reads` holds interval reads per premise, channel
and interval start; its primary key is what deduplicates re-sent reads (ingestion upserts on it).

Revision ID: 0020
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

COLUMNS = (
    ("data_mode", sa.String(20)),
    ("data_interval", sa.String(10)),
    ("data_from", UtcDateTime),
    ("data_to", UtcDateTime),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("agreements", sa.Column(name, kind, nullable=True))
    op.create_table(
        "usage_reads",
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("interval_start", UtcDateTime, nullable=False),
        sa.Column("length_s", sa.Integer, nullable=False),
        sa.Column("value_wh", sa.Integer, nullable=False),
        sa.Column("quality", sa.String(10), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("esi_id", "channel", "interval_start", name="pk_usage_reads"),
    )


def downgrade() -> None:
    # Idempotent, as 0015's: SQLite's driver commits DDL at once, so a failed older downgrade
    # leaves the version table at 0020 and the next attempt runs this again.
    op.execute("DROP TABLE IF EXISTS usage_reads")
    bind = op.get_bind()
    present = {c["name"] for c in sa.inspect(bind).get_columns("agreements")}
    for name, _kind in reversed(COLUMNS):
        if name not in present:
            continue
        if bind.dialect.name == "sqlite":  # SQLite >= 3.35 drops a column in place
            op.execute(f"ALTER TABLE agreements DROP COLUMN {name}")
        else:
            op.drop_column("agreements", name)
