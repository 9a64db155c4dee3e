"""Indexes for the incremental withdrawal sweep: agreements by `updated_at` and by `ends_at`.

The dispatcher withdraws texts and load-control events sent under agreements that have ended.
Each sweep looks only at agreements that ended since the previous one (terminated: `updated_at`
moved; ran out: `ends_at` passed), which these two indexes answer without reading the table.

Revision ID: 0010
Revises: 0006
"""

from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agreements_updated_at", "agreements", ["updated_at"])
    op.create_index("ix_agreements_ends_at", "agreements", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_agreements_ends_at", table_name="agreements")
    op.drop_index("ix_agreements_updated_at", table_name="agreements")
