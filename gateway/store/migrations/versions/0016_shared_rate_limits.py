"""Rate limits shared by every gateway instance on one database (issue 14): rate_limit_buckets.

One row per third party holding its GCRA bucket (the theoretical arrival time by the database's
clock); gateway/store/rate_limits.py updates it with one atomic upsert per request. No foreign key:
a bucket of a deleted party is harmless and a request never waits on the parties table.
UNLOGGED on PostgreSQL: a bucket is worth no WAL write (and fsync) per API request; after a crash
of the database the table is empty, which only means every bucket starts full.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_buckets",
        sa.Column("party_id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.Column("allowed", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("party_id", name="pk_rate_limit_buckets"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rate_limit_buckets SET UNLOGGED")


def downgrade() -> None:
    # Idempotent, as 0015's: SQLite's driver commits DDL at once, so when an older revision's
    # downgrade fails after this one ran (0014 refuses while the operator's requests exist), the
    # version table still says 0016 and the next attempt runs this again.
    op.execute("DROP TABLE IF EXISTS rate_limit_buckets")
