"""Local radio route state: outbound idempotency records and per-device radio details (the
NWK address; the reason of a device's last change is han_devices.last_reason, from 0007).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "radio_outbound",
        sa.Column("outbound_id", sa.String(100), nullable=False),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("eui64", sa.String(16), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("outbound_id", name="pk_radio_outbound"),
    )
    op.create_index("ix_radio_outbound_esi_id", "radio_outbound", ["esi_id"])
    op.create_table(
        "radio_devices",
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("eui64", sa.String(16), nullable=False),
        sa.Column("nwk", sa.Integer, nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("esi_id", "eui64", name="pk_radio_devices"),
        sa.ForeignKeyConstraint(["esi_id"], ["premises.esi_id"], name="fk_radio_devices_esi_id_premises"),
    )


def downgrade() -> None:
    op.drop_table("radio_devices")
    op.drop_index("ix_radio_outbound_esi_id", table_name="radio_outbound")
    op.drop_table("radio_outbound")
