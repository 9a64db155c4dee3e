"""One delivery per premise *and SE event*: a cancel-all sends one CancelLoadControlEvent per event
of the caller on the premise, each its own outbox item with its own status.

- han_deliveries: the unique key (request_id, esi_id) becomes (request_id, esi_id, se_id). Every
  other request still has one row per premise (all its rows carry the request's SE id); a
  cancel-all request has one row per cancelled event (each row carries that event's issuer id).
- han_deliveries.cancels_request_id: the request whose event a cancel delivery cancels, so that
  `GET /v1/han-requests/{id}/deliveries` names it per item.

On SQLite the unique key cannot be altered: batch mode rebuilds han_deliveries (copy into
`_alembic_tmp_han_deliveries`, DROP, rename), and han_device_states points at it. As first
released, the upgrade ran with the store's foreign keys on, so the DROP failed on any database
holding device answers, leaving the copy table behind (and, from before 0012, the first revision
it applied without its stamp). The upgrade now runs in `gateway.store.sqlite_upgrade`: one
transaction, foreign keys off during the rebuild, `PRAGMA foreign_key_check` before the commit,
and the leftovers of that failed upgrade cleared first. This revision's own steps did not change,
so databases that upgraded (no device answers yet, or PostgreSQL) are the same.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("han_deliveries") as batch:
        batch.add_column(sa.Column("cancels_request_id", sa.Integer, nullable=True))
        batch.drop_constraint("uq_han_deliveries_request_id", type_="unique")
        batch.create_unique_constraint("uq_han_deliveries_request_esi_se", ["request_id", "esi_id", "se_id"])
    # Cancel deliveries made before this revision: the cancelled request is the text or
    # load-control request of the delivery's SE id (SE ids are unique gateway-wide).
    op.execute(sa.text(
        "UPDATE han_deliveries SET cancels_request_id = (SELECT MIN(r.id) FROM han_requests r "
        "WHERE r.se_id = han_deliveries.se_id AND r.kind IN ('text', 'load_control')) "
        "WHERE command IN ('cancel_message', 'cancel_load_control_event')"))


def downgrade() -> None:
    with op.batch_alter_table("han_deliveries") as batch:
        batch.drop_constraint("uq_han_deliveries_request_esi_se", type_="unique")
        batch.create_unique_constraint("uq_han_deliveries_request_id", ["request_id", "esi_id"])
        batch.drop_column("cancels_request_id")
