"""Indexes for the dispatcher at scale: agreements by `updated_at` and by `ends_at` (the
incremental withdrawal sweep), and HAN requests still expanding a fan-out.

The dispatcher withdraws texts and load-control events sent under agreements that have ended.
Each sweep looks only at agreements that ended since the previous one (terminated: `updated_at`
moved; ran out: `ends_at` passed), which these two indexes answer without reading the table.

Each dispatcher pass also looks for fan-outs still expanding (`fanout_after` not NULL, oldest
first): a partial index of those requests' ids keeps that from reading every request ever made.

Revision ID: 0010
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agreements_updated_at", "agreements", ["updated_at"])
    op.create_index("ix_agreements_ends_at", "agreements", ["ends_at"])
    op.create_index("ix_han_requests_expanding", "han_requests", ["id"],
                    sqlite_where=sa.text("fanout_after IS NOT NULL"),
                    postgresql_where=sa.text("fanout_after IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_han_requests_expanding", table_name="han_requests")
    op.drop_index("ix_agreements_ends_at", table_name="agreements")
    op.drop_index("ix_agreements_updated_at", table_name="agreements")
