"""Fan-out at a million premises on PostgreSQL (issue 14): han_deliveries.submitted_at.

When a route takes an item, its row records the time (`submitted_at`) in the same UPDATE that makes
it `submitted`. The item's `submitted` history entry and its outbound frame-log record are read
from that row (gateway/store/han_requests.py `history_of`, docs/pipeline.md "Audit") instead of
being inserted as a han_transitions row and a han_frame_log row per premise. Rows handed before
this revision keep the rows they have (their `submitted_at` stays NULL), so their history reads
the same. A plain ADD COLUMN on both back-ends (no table rebuild, no index).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("han_deliveries", sa.Column("submitted_at", UtcDateTime, nullable=True))


def downgrade() -> None:
    # The entries read from the column become rows again, so that the older code, which reads
    # only han_transitions and han_frame_log, shows the same history and audit trail.
    bind = op.get_bind()
    # Idempotent: SQLite's driver commits DDL at once, so a failed older downgrade can leave the
    # version table at 0017 with the column already gone (see 0015).
    if "submitted_at" not in {c["name"] for c in sa.inspect(bind).get_columns("han_deliveries")}:
        return
    op.execute("INSERT INTO han_transitions (delivery_id, eui64, state, at, detail) "
               "SELECT id, NULL, 'submitted', submitted_at, NULL FROM han_deliveries "
               "WHERE submitted_at IS NOT NULL")
    op.execute("INSERT INTO han_frame_log (at, direction, esi_id, eui64, request_id, delivery_id, agreement_id, "
               "cluster_id, command, frame) SELECT submitted_at, 'out', esi_id, NULL, request_id, id, agreement_id, "
               "cluster_id, command, frame FROM han_deliveries WHERE submitted_at IS NOT NULL")
    if bind.dialect.name == "sqlite":  # SQLite >= 3.35 drops a column in place
        op.execute("ALTER TABLE han_deliveries DROP COLUMN submitted_at")
    else:
        op.drop_column("han_deliveries", "submitted_at")
