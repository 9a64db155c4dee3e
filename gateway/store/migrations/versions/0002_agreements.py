"""Agreements (customer consent) and the premises each covers.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("party_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("scopes", sa.String(100), nullable=False),
        sa.Column("customer_email", sa.String(320), nullable=False),
        sa.Column("duration_months", sa.Integer, nullable=False),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("invitation_expires_at", UtcDateTime, nullable=False),
        sa.Column("resend_count", sa.Integer, nullable=False),
        sa.Column("consent_token_hash", sa.String(64), nullable=True),
        sa.Column("consent_expires_at", UtcDateTime, nullable=True),
        sa.Column("terminate_token_hash", sa.String(64), nullable=True),
        sa.Column("accepted_at", UtcDateTime, nullable=True),
        sa.Column("starts_at", UtcDateTime, nullable=True),
        sa.Column("ends_at", UtcDateTime, nullable=True),
        sa.Column("ended_at", UtcDateTime, nullable=True),
        sa.Column("end_reason", sa.String(200), nullable=True),
        sa.Column("reminders_sent", sa.Integer, nullable=False),
        sa.Column("renewal_months", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agreements"),
        sa.UniqueConstraint("consent_token_hash", name="uq_agreements_consent_token_hash"),
        sa.UniqueConstraint("terminate_token_hash", name="uq_agreements_terminate_token_hash"),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name="fk_agreements_party_id_parties"
        ),
    )
    op.create_index("ix_agreements_party_id", "agreements", ["party_id"])
    op.create_index("ix_agreements_state", "agreements", ["state"])
    op.create_table(
        "agreement_premises",
        sa.Column("agreement_id", sa.Integer, nullable=False),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("meter_number", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("agreement_id", "esi_id", name="pk_agreement_premises"),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name="fk_agreement_premises_agreement_id_agreements",
        ),
        sa.ForeignKeyConstraint(
            ["esi_id"], ["premises.esi_id"], name="fk_agreement_premises_esi_id_premises"
        ),
    )
    op.create_index("ix_agreement_premises_esi_id", "agreement_premises", ["esi_id"])
