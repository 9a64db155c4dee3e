"""Deliveries reach a meter in id order with several instances (issue 14): an index of the queued
deliveries by premise.

A claim (gateway/store/deliveries.py `read_due`) takes a premise's delivery only when no earlier
delivery of that premise is still queued (claimed by another instance, or waiting for its retry).
The check is one probe of this index per candidate row; partial (queued rows only), so it stays
as small as the queue and never reads a premise's delivered history.

Revision ID: 0022
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    queued = sa.text("state = 'queued'")
    op.create_index("ix_han_deliveries_queued_esi", "han_deliveries", ["esi_id", "id"],
                    sqlite_where=queued, postgresql_where=queued)


def downgrade() -> None:
    # Idempotent, as 0015's and 0016's: SQLite's driver commits DDL at once, so an older
    # revision's downgrade failing after this one ran leaves the version at 0022 and runs this again.
    op.execute("DROP INDEX IF EXISTS ix_han_deliveries_queued_esi")
