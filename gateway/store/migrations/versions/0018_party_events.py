"""One event log for everything a third party cares about (issue 15): party_events.

- party_events: one row per event of a third party (agreement lifecycle, device provisioning,
  request deliveries, webhook dead letters). Its id is the event's id everywhere: the `"id"` in
  the body, the Standard Webhooks `webhook-id` (`evt_<id>`), the MQTT event id and the
  `GET /v1/events?after=` cursor. `subject` is the ordering key (`request:12`, `agreement:5`,
  `device:<esi_id>:<eui64>`): events of one subject reach each channel in order. The body is
  the JSON exactly as sent. Read by party in id order (ix_party_events_party_id_id).
- webhook_outbox.event_id: the event an outbox row sends (its body is read from party_events;
  rows queued before this revision keep their own body and have none).
- webhook_outbox.subject: the ordering key of webhook sending (was request_id); rows queued
  before this revision get `request:<request_id>`, which keeps the order they had.
- ix_han_requests_party_id_id: `GET /v1/han-requests` pages one party's requests in id order.

Revision ID: 0018
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "party_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id", name="fk_party_events_party_id_parties"),
                  nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_party_events"),
    )
    op.create_index("ix_party_events_party_id_id", "party_events", ["party_id", "id"])
    op.create_index("ix_han_requests_party_id_id", "han_requests", ["party_id", "id"])
    op.add_column("webhook_outbox", sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                              nullable=True))
    op.add_column("webhook_outbox", sa.Column("subject", sa.String(100), nullable=True))
    outbox = sa.table("webhook_outbox", sa.column("subject", sa.String), sa.column("request_id", sa.Integer))
    op.execute(outbox.update().values(
        subject=sa.literal("request:") + sa.cast(outbox.c.request_id, sa.String)))


def downgrade() -> None:
    # Idempotent, as 0015's: SQLite's driver commits DDL at once, so when an older revision's
    # downgrade fails after this one ran, the version table still says 0018 and the next attempt
    # runs this again.
    bind = op.get_bind()
    present = {c["name"] for c in sa.inspect(bind).get_columns("webhook_outbox")}
    for column in ("subject", "event_id"):
        if column not in present:
            continue
        if bind.dialect.name == "sqlite":  # SQLite >= 3.35 drops a column in place
            op.execute(f"ALTER TABLE webhook_outbox DROP COLUMN {column}")
        else:
            op.drop_column("webhook_outbox", column)
    op.execute("DROP INDEX IF EXISTS ix_han_requests_party_id_id")
    op.execute("DROP INDEX IF EXISTS ix_party_events_party_id_id")
    op.execute("DROP TABLE IF EXISTS party_events")
