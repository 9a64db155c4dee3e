"""Parties, technicians, credentials, premises, technician assignments, HAN devices.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("duns", sa.String(9), nullable=False),
        sa.Column("contact_email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parties"),
        sa.UniqueConstraint("duns", name="uq_parties_duns"),
    )
    op.create_table(
        "technicians",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_technicians"),
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("party_id", sa.Integer, nullable=True),
        sa.Column("technician_id", sa.Integer, nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_prefix", sa.String(12), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_credentials"),
        sa.UniqueConstraint("token_hash", name="uq_credentials_token_hash"),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name="fk_credentials_party_id_parties"
        ),
        sa.ForeignKeyConstraint(
            ["technician_id"], ["technicians.id"], name="fk_credentials_technician_id_technicians"
        ),
    )
    op.create_table(
        "premises",
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("tdsp", sa.String(30), nullable=False),
        sa.Column("meter_number", sa.String(40), nullable=False),
        sa.Column("customer_email", sa.String(320), nullable=True),
        sa.Column("rep", sa.String(200), nullable=True),
        sa.Column("premise_class", sa.String(30), nullable=False),
        sa.Column("se_version", sa.String(5), nullable=True),
        sa.Column("enhanced_meter", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("esi_id", name="pk_premises"),
    )
    op.create_table(
        "technician_assignments",
        sa.Column("technician_id", sa.Integer, nullable=False),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.PrimaryKeyConstraint("technician_id", "esi_id", name="pk_technician_assignments"),
        sa.ForeignKeyConstraint(
            ["technician_id"],
            ["technicians.id"],
            name="fk_technician_assignments_technician_id_technicians",
        ),
        sa.ForeignKeyConstraint(
            ["esi_id"], ["premises.esi_id"], name="fk_technician_assignments_esi_id_premises"
        ),
    )
    op.create_table(
        "han_devices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("esi_id", sa.String(22), nullable=False),
        sa.Column("eui64", sa.String(16), nullable=False),
        sa.Column("device_type", sa.String(40), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("party_id", sa.Integer, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_han_devices"),
        sa.UniqueConstraint("esi_id", "eui64", name="uq_han_devices_esi_id_eui64"),
        sa.ForeignKeyConstraint(
            ["esi_id"], ["premises.esi_id"], name="fk_han_devices_esi_id_premises"
        ),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name="fk_han_devices_party_id_parties"
        ),
    )
