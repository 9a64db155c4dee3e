"""The MQTT API's broker credentials per third party (issue 15): mqtt_credentials.

One row per username the gateway issued on the operator's broker (`hangw admin party
mqtt-credentials`): the SHA-256 of its password (shown once), when it was issued and revoked.
A rotation revokes the old row and adds a new one. And mqtt_event_cursors: per party, the last
event the broker acknowledged on its MQTT events topics and the publishing instance's claim.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import EventId, UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mqtt_credentials",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("party_id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mqtt_credentials"),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name="fk_mqtt_credentials_party_id_parties"),
        sa.UniqueConstraint("username", name="uq_mqtt_credentials_username"),
    )
    op.create_index("ix_mqtt_credentials_party_id", "mqtt_credentials", ["party_id"])
    op.create_table(
        "mqtt_event_cursors",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("party_id", sa.Integer, nullable=False),
        sa.Column("last_event_id", EventId, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mqtt_event_cursors"),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name="fk_mqtt_event_cursors_party_id_parties"),
        sa.UniqueConstraint("party_id", name="uq_mqtt_event_cursors_party_id"),
    )


def downgrade() -> None:
    # Idempotent, as 0015's and 0016's (SQLite commits DDL at once; a failed older downgrade reruns this).
    op.execute("DROP TABLE IF EXISTS mqtt_event_cursors")
    op.execute("DROP INDEX IF EXISTS ix_mqtt_credentials_party_id")
    op.execute("DROP TABLE IF EXISTS mqtt_credentials")
