"""HAN provisioning: encrypted link key, join-window end and last reason on han_devices; the
provisioning status history (han_device_events) and the provisioning outbox (han_provisioning_ops).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("han_devices") as batch:
        batch.add_column(sa.Column("link_key_encrypted", sa.String(200), nullable=True))
        batch.add_column(sa.Column("join_window_ends_at", UtcDateTime, nullable=True))
        batch.add_column(sa.Column("last_reason", sa.String(300), nullable=True))
    op.create_table(
        "han_device_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id",
                  name="fk_han_device_events_esi_id_premises"), nullable=False),
        sa.Column("eui64", sa.String(16), nullable=True),
        sa.Column("operation_id", sa.Integer, nullable=True),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_han_device_events"),
    )
    op.create_index("ix_han_device_events_esi_id_eui64", "han_device_events", ["esi_id", "eui64"])
    op.create_table(
        "han_provisioning_ops",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id",
                  name="fk_han_provisioning_ops_esi_id_premises"), nullable=False),
        sa.Column("eui64", sa.String(16), nullable=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("join_window_s", sa.Integer, nullable=True),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id",
                  name="fk_han_provisioning_ops_party_id_parties"), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_han_provisioning_ops"),
    )
    op.create_index("ix_han_provisioning_ops_state_next_attempt_at", "han_provisioning_ops",
                    ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_han_provisioning_ops_state_next_attempt_at", table_name="han_provisioning_ops")
    op.drop_table("han_provisioning_ops")
    op.drop_index("ix_han_device_events_esi_id_eui64", table_name="han_device_events")
    op.drop_table("han_device_events")
    with op.batch_alter_table("han_devices") as batch:
        batch.drop_column("last_reason")
        batch.drop_column("join_window_ends_at")
        batch.drop_column("link_key_encrypted")
