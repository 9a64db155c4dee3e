"""Issue 15's last pieces: one-time dashboard sign-in links (only their hash kept), the event log's
retention horizon per party, leases of periodic jobs (the retention sweep), and the customer's
language on each agreement (consent pages and agreement emails in English or Spanish).

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "page_sign_in_links",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id", name="fk_page_sign_in_links_party_id_parties"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_page_sign_in_links"),
        sa.UniqueConstraint("token_hash", name="uq_page_sign_in_links_token_hash"),
    )
    op.create_index("ix_page_sign_in_links_party_id", "page_sign_in_links", ["party_id"])
    op.create_table(
        "party_event_horizons",
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id", name="fk_party_event_horizons_party_id_parties"),
                  nullable=False),
        sa.Column("swept_through_id", EVENT_ID, nullable=False),
        sa.PrimaryKeyConstraint("party_id", name="pk_party_event_horizons"),
    )
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("lease_until", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_leases"),
    )
    # The customer's language (consent pages and agreement emails); existing agreements: English.
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(sa.Column("customer_language", sa.String(2), nullable=False, server_default="en"))
    # The sweep reads the oldest events first (by id; ids grow with time).
    op.create_index("ix_party_events_created_at", "party_events", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("agreements") as batch:
        batch.drop_column("customer_language")
    op.execute("DROP INDEX IF EXISTS ix_party_events_created_at")
    op.execute("DROP TABLE IF EXISTS job_leases")
    op.execute("DROP TABLE IF EXISTS party_event_horizons")
    op.execute("DROP INDEX IF EXISTS ix_page_sign_in_links_party_id")
    op.execute("DROP TABLE IF EXISTS page_sign_in_links")
