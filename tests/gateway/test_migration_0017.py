"""Migration 0017 on SQLite and PostgreSQL: a delivery handed to its route after it has its
`submitted` history entry read from its own row (`submitted_at`), the same history the API showed
from a transition row before; a downgrade writes those entries back as the transition and
frame-log rows the older code reads, puts the request's foreign key back, and a second run of the
downgrade (a failed older downgrade leaves the version at 0017) adds nothing twice."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from gateway.store import han_requests, migrate
from gateway.store.store import make_engine
from tests.gateway.conftest import pg_url
from tests.gateway.test_migration_0014 import REQUEST

__all__ = ["pg_url"]

DELIVERY = ("INSERT INTO han_deliveries (id, request_id, party_id, esi_id, agreement_id, se_id, se_version, "
            "cluster_id, command, state, attempts, expires_at, created_at, updated_at{extra}) VALUES ({id}, 1, 1, "
            "'1044372000000000{id}', 7, 70000, '1.1', 1795, 'display_message', 'delivered', 0, "
            "'2026-01-02 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'{extra_value})")


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(migrate.alembic_config(connection), revision)


def _stamp(connection: Connection, revision: str) -> None:
    command.stamp(migrate.alembic_config(connection), revision)


def _request_fk(connection: Connection) -> bool:
    return any(fk["referred_table"] == "han_requests"
               for fk in sa.inspect(connection).get_foreign_keys("han_deliveries"))


async def test_submitted_history_from_the_row_and_back_to_rows_on_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await migrate.upgrade(engine, "0016")
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO parties (id, name, duns, contact_email, status, created_at) "
                "VALUES (1, 'Old', '123456789', 'o@x.test', 'active', '2025-01-01 00:00:00')"))
            await conn.execute(sa.text(REQUEST.format(id=1, party=1)))
            # Handed before 0017: its history is its transition rows.
            await conn.execute(sa.text(DELIVERY.format(id=1, extra="", extra_value="")))
            await conn.execute(sa.text(
                "INSERT INTO han_transitions (delivery_id, state, at) VALUES "
                "(1, 'submitted', '2026-01-01 00:00:01'), (1, 'delivered', '2026-01-01 00:00:02')"))
        await migrate.upgrade(engine, "head")
        async with engine.begin() as conn:
            assert not await conn.run_sync(_request_fk)
            # Handed after 0017: its submitted entry is the row's own stamp.
            await conn.execute(sa.text(DELIVERY.format(
                id=2, extra=", submitted_at", extra_value=", '2026-01-01 00:00:03'")))
            await conn.execute(sa.text(
                "INSERT INTO han_transitions (delivery_id, state, at) VALUES (2, 'delivered', '2026-01-01 00:00:04')"))
        items = await han_requests.list_deliveries(engine, 1, after=0, limit=10)
        histories = [[(h.state, h.at.second) for h in item.history] for item in items]
        assert histories == [[("submitted", 1), ("delivered", 2)], [("submitted", 3), ("delivered", 4)]]

        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0016")
        expected_transitions = [(1, "submitted"), (1, "delivered"), (2, "delivered"), (2, "submitted")]
        for attempt in range(2):  # the second: a downgrade run again with the version left at 0017
            if attempt:
                async with engine.begin() as conn:
                    await conn.run_sync(_stamp, "0017")
                    await conn.run_sync(_downgrade, "0016")
            assert await migrate.current_revision(engine) == "0016"
            async with engine.connect() as conn:
                assert await conn.run_sync(_request_fk)
                columns = await conn.run_sync(
                    lambda c: {col["name"] for col in sa.inspect(c).get_columns("han_deliveries")})
                assert "submitted_at" not in columns
                transitions = (await conn.execute(sa.text(
                    "SELECT delivery_id, state FROM han_transitions ORDER BY id"))).all()
                assert [tuple(t) for t in transitions] == expected_transitions, attempt
                sent = (await conn.execute(sa.text("SELECT delivery_id, direction, esi_id, request_id, "
                                                   "agreement_id, command FROM han_frame_log"))).all()
                assert [tuple(s) for s in sent] == [(2, "out", "10443720000000002", 1, 7, "display_message")]
        await migrate.upgrade(engine, "head")
        assert await migrate.current_revision(engine) == migrate.revisions()[-1]
    finally:
        await engine.dispose()
