"""Block periods and webhook dead letters.

- han_requests.part_of_request_id: a price request's PublishBlockPeriod travels as a companion
  request (its own SE issuer event id, its own deliveries), linked to the price request here.
- webhook_outbox.dead_at: set when an event has used up its attempts or its age; such events are
  no longer sent (nor wait in front of later events of their request) until redelivered.

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("han_requests") as batch:
        batch.add_column(sa.Column("part_of_request_id", sa.Integer, nullable=True))
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.add_column(sa.Column("dead_at", UtcDateTime, nullable=True))
    op.create_index("ix_webhook_outbox_dead", "webhook_outbox", ["webhook_id", "dead_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_outbox_dead", table_name="webhook_outbox")
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.drop_column("dead_at")
    with op.batch_alter_table("han_requests") as batch:
        batch.drop_column("part_of_request_id")
