"""Fan-out keyset index: agreement_premises (esi_id, agreement_id), replacing (esi_id).

`premises_in_scope` walks agreement_premises in ESI ID order from the cursor and stops after one
page; with the agreement id in the index that walk reads the index alone (each page costs
O(page), not a scan of the rest of the keyset). Lookups by ESI ID use the same index.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agreement_premises_esi_id_agreement_id", "agreement_premises",
                    ["esi_id", "agreement_id"])
    op.drop_index("ix_agreement_premises_esi_id", table_name="agreement_premises")


def downgrade() -> None:
    op.create_index("ix_agreement_premises_esi_id", "agreement_premises", ["esi_id"])
    op.drop_index("ix_agreement_premises_esi_id_agreement_id", table_name="agreement_premises")
