"""Fan-out at a million premises on PostgreSQL (issue 14): han_deliveries.submitted_at, and no
per-row foreign-key check of a delivery's request.

- When a route takes an item, its row records the time (`submitted_at`) in the same UPDATE that
  makes it `submitted`. The item's `submitted` history entry and its outbound frame-log record are
  read from that row (gateway/store/han_requests.py `history_of`, docs/pipeline.md "Audit")
  instead of being inserted as a han_transitions row and a han_frame_log row per premise. Rows
  handed before this revision keep the rows they have (their `submitted_at` stays NULL), so their
  history reads the same. A plain ADD COLUMN (no index).
- The foreign key han_deliveries.request_id -> han_requests.id is dropped: PostgreSQL checks it
  with a trigger per inserted row (a lookup and a lock of the request row), 15-25 % of the INSERT
  of a fan-out page. Deliveries are only ever written with or after their request, which is never
  deleted. On SQLite, dropping a constraint rebuilds han_deliveries (batch mode, in
  `gateway.store.sqlite_upgrade`'s one transaction with the foreign-key check before COMMIT): the
  upgrade of a large SQLite store copies the table once.

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

FK = "fk_han_deliveries_request_id_han_requests"


def _request_fk(bind: sa.engine.Connection) -> bool:
    return any(fk["referred_table"] == "han_requests" for fk in sa.inspect(bind).get_foreign_keys("han_deliveries"))


def upgrade() -> None:
    op.add_column("han_deliveries", sa.Column("submitted_at", UtcDateTime, nullable=True))
    with op.batch_alter_table("han_deliveries") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    bind = op.get_bind()
    # Idempotent: SQLite's driver commits DDL at once, so when an older revision's downgrade fails
    # after this one ran, the version table still says 0017 and the next attempt runs this again
    # on a table that has its foreign key back and no column (see 0015).
    if not _request_fk(bind):
        with op.batch_alter_table("han_deliveries") as batch:
            batch.create_foreign_key(FK, "han_requests", ["request_id"], ["id"])
    if "submitted_at" not in {c["name"] for c in sa.inspect(bind).get_columns("han_deliveries")}:
        return
    # The entries read from the column become rows again, so that the older code, which reads
    # only han_transitions and han_frame_log, shows the same history and audit trail.
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
