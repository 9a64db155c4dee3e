"""On-demand meter reads (issue 16): the queue of reads a party asked for, and the per-TDSP daily
count that caps them.

`meter_reads` is an outbox like the mail and webhook queues (gateway/store/row_claims.py): a read
is stored pending and due at once; an instance claims it with a lease (`next_attempt_at`,
`attempts` as the fencing token), reads the meter, and records the outcome (completed with the
register, or failed with a typed reason); `next_attempt_at` is NULL once it is done, so the
partial index holds the pending reads only. `meter_read_quota` counts the reads accepted per
TDSP and Texas-local day: one upsert row, incremented only below the configured cap, in the
transaction that stores the read (several instances count in one place).

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meter_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=True),
        sa.Column("agreement_id", sa.Integer, nullable=True),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("tdsp", sa.String(30), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(20), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("requested_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("read_at", UtcDateTime, nullable=True),
        sa.Column("delivered_wh", sa.BigInteger, nullable=True),
        sa.Column("received_wh", sa.BigInteger, nullable=True),
        sa.Column("demand_w", sa.Integer, nullable=True),
    )
    due = sa.text("next_attempt_at IS NOT NULL")
    op.create_index("ix_meter_reads_due", "meter_reads", ["next_attempt_at"],
                    sqlite_where=due, postgresql_where=due)
    op.create_table(
        "meter_read_quota",
        sa.Column("tdsp", sa.String(30), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("used", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("tdsp", "day", name="pk_meter_read_quota"),
    )


def downgrade() -> None:
    # Idempotent, as 0020's: SQLite's driver commits DDL at once.
    op.execute("DROP TABLE IF EXISTS meter_read_quota")
    op.execute("DROP INDEX IF EXISTS ix_meter_reads_due")
    op.execute("DROP TABLE IF EXISTS meter_reads")
