"""SE ids from a PostgreSQL sequence (issue 14): several instances no longer queue on one row.

Every accepted request took the next SE id with `UPDATE se_id_counters … RETURNING`, which holds
that one row's lock to the commit: with several gateway instances, each request transaction waited
for every other instance's to commit (measured: 3 instances accepted 11 text requests/s where one
accepted 97). `nextval` takes no lock that lasts. Ids stay unique; per meter they still increase in
the order its deliveries are queued, because a request takes its premises' advisory locks
(gateway/store/advisory_locks.py) before its id (gateway/store/se_ids.py). SQLite (one writer) keeps
the counter row.

The sequence starts after the last id the counter gave; a downgrade writes the sequence's last
value back into the counter.

Revision ID: 0023
Revises: 0022
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

SE_ID_START = 0x10000


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE IF NOT EXISTS se_id_seq AS bigint")
    # setval(v): the next nextval is v + 1.
    op.execute(f"SELECT setval('se_id_seq', GREATEST(COALESCE((SELECT value FROM se_id_counters WHERE name = "
               f"'se_id'), 0), {SE_ID_START - 1}))")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("INSERT INTO se_id_counters (name, value) VALUES ('se_id', 0) ON CONFLICT (name) DO NOTHING")
    op.execute("UPDATE se_id_counters SET value = GREATEST(value, (SELECT last_value FROM se_id_seq)) "
               "WHERE name = 'se_id'")
    op.execute("DROP SEQUENCE IF EXISTS se_id_seq")
