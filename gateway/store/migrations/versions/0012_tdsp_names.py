"""One name per TDSP: premises stored with the API's old `aep_texas_central`/`aep_texas_north` take
the names the config (`[routes.tdsp.aep_central]`) and the head-end profiles use.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

RENAMES = (("aep_texas_central", "aep_central"), ("aep_texas_north", "aep_north"))


def _rename(pairs: tuple[tuple[str, str], ...]) -> None:
    for old, new in pairs:
        op.execute(sa.text("UPDATE premises SET tdsp = :new WHERE tdsp = :old").bindparams(old=old, new=new))


def upgrade() -> None:
    _rename(RENAMES)


def downgrade() -> None:
    _rename(tuple((new, old) for old, new in RENAMES))
