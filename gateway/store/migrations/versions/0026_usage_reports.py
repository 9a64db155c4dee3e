"""Bulk usage reports (issue 16, "Bulk"): table `usage_reports`, one row per report a party asked
for, claimed by a worker with a lease (next_attempt_at, attempts as the fencing token) and kept
until its file's retention is over.

Revision ID: 0026
Revises: 0025
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_reports",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("party_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("period_start", UtcDateTime, nullable=False),
        sa.Column("period_end", UtcDateTime, nullable=False),
        sa.Column("premises", sa.Text, nullable=False),
        sa.Column("premises_total", sa.Integer, nullable=False),
        sa.Column("premises_done", sa.Integer, nullable=False),
        sa.Column("rows_written", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=True),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("file_name", sa.String(200), nullable=True),
        sa.Column("file_bytes", sa.BigInteger, nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name="fk_usage_reports_party_id_parties"),
        sa.PrimaryKeyConstraint("id", name="pk_usage_reports"),
    )
    op.create_index("ix_usage_reports_party_id", "usage_reports", ["party_id"])
    op.create_index("ix_usage_reports_due", "usage_reports", ["next_attempt_at"],
                    sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
                    postgresql_where=sa.text("next_attempt_at IS NOT NULL"))
    op.create_index("ix_usage_reports_expires_at", "usage_reports", ["expires_at"],
                    sqlite_where=sa.text("state = 'done'"), postgresql_where=sa.text("state = 'done'"))


def downgrade() -> None:
    # Idempotent, as 0020's and 0022's (SQLite commits DDL at once).
    op.execute("DROP TABLE IF EXISTS usage_reports")
