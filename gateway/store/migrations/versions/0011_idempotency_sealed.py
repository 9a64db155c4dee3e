"""Idempotency keys reserved with the action they guard, their answers sealed.

The old table kept each answer in clear for 24 h, keyed by a hash of the bearer token; a credential
issued with a key left its live token there. The new one is written in the same transaction as the
action (a unit of work), keyed by the credential and a hash of the key, and the answer is encrypted
with a key derived from the caller's token and Idempotency-Key, neither of which is stored: only the
caller who sent the request can read its answer again. Stored answers are dropped (they could not be
sealed; keys live 24 h).

Webhook signing secrets, stored in clear until now, are sealed by the gateway at its next start
(the migration has no key; a sealed secret fits the same column).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("idempotency_keys")
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(200), nullable=False),
        sa.Column("request_mac", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("sealed_body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key_hash", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    )
