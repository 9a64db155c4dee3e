"""The HAN request pipeline: requests, deliveries (the outbox), device states, transitions, SE id
counters, load-control arbitration, the frame log, webhooks and their outbox.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "han_requests",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("se_id", sa.BigInteger, nullable=True),
        sa.Column("command", sa.Text, nullable=True),
        sa.Column("target_all", sa.Boolean, nullable=False),
        sa.Column("fanout_after", sa.String(22), nullable=True),
        sa.Column("targeted", sa.Integer, nullable=False),
        sa.Column("excluded", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("cancels_request_id", sa.Integer, nullable=True),
        sa.Column("starts_at", UtcDateTime, nullable=True),
        sa.Column("ends_at", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_han_requests"),
    )
    op.create_index("ix_han_requests_party_id", "han_requests", ["party_id"])
    op.create_table(
        "han_deliveries",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("han_requests.id"), nullable=False),
        sa.Column("party_id", sa.Integer, nullable=False),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("agreement_id", sa.Integer, nullable=True),
        sa.Column("se_id", sa.BigInteger, nullable=True),
        sa.Column("se_version", sa.String(5), nullable=False),
        sa.Column("cluster_id", sa.Integer, nullable=False),
        sa.Column("command", sa.String(40), nullable=False),
        sa.Column("fields", sa.Text, nullable=True),
        sa.Column("frame", sa.String(600), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("reference", sa.String(100), nullable=True),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("request_id", "esi_id", name="uq_han_deliveries_request_id"),
        sa.PrimaryKeyConstraint("id", name="pk_han_deliveries"),
    )
    op.create_index("ix_han_deliveries_due", "han_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_han_deliveries_esi_se", "han_deliveries", ["esi_id", "se_id"])
    op.create_table(
        "han_device_states",
        sa.Column("delivery_id", sa.Integer, sa.ForeignKey("han_deliveries.id")),
        sa.Column("eui64", sa.String(23)),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", "eui64", name="pk_han_device_states"),
    )
    op.create_table(
        "han_transitions",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("delivery_id", sa.Integer, nullable=False),
        sa.Column("eui64", sa.String(23), nullable=True),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_han_transitions"),
    )
    op.create_index("ix_han_transitions_delivery_id", "han_transitions", ["delivery_id"])
    op.create_table(
        "se_id_counters",
        sa.Column("name", sa.String(30)),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_se_id_counters"),
    )
    # The SE id counter starts above small ids other systems on a meter may already have used.
    op.bulk_insert(sa.table("se_id_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
                   [{"name": "se_id", "value": 0xFFFF}])
    op.create_table(
        "lce_events",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("issuer_event_id", sa.BigInteger, nullable=False),
        sa.Column("party_id", sa.Integer, nullable=False),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("device_class", sa.Integer, nullable=False),
        sa.Column("criticality", sa.Integer, nullable=False),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("ends_at", UtcDateTime, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lce_events"),
    )
    op.create_index("ix_lce_events_esi_id", "lce_events", ["esi_id"])
    op.create_table(
        "han_frame_log",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("eui64", sa.String(23), nullable=True),
        sa.Column("request_id", sa.Integer, nullable=True),
        sa.Column("delivery_id", sa.Integer, nullable=True),
        sa.Column("agreement_id", sa.Integer, nullable=True),
        sa.Column("cluster_id", sa.Integer, nullable=False),
        sa.Column("command", sa.String(40), nullable=False),
        sa.Column("frame", sa.String(600), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_han_frame_log"),
    )
    op.create_index("ix_han_frame_log_esi_id", "han_frame_log", ["esi_id"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
    )
    op.create_index("ix_webhooks_party_id", "webhooks", ["party_id"])
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id"), nullable=False),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("delivered_at", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_outbox"),
    )
    op.create_index("ix_webhook_outbox_next_attempt_at", "webhook_outbox", ["next_attempt_at"])
