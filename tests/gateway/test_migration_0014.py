"""Migration 0014 on SQLite and PostgreSQL, on a database that has requests, deliveries and device
states: nothing is rebuilt (SQLite refuses to rebuild a table other tables' rows point at with
foreign keys on), every row stays, the operator's requests (NULL party) are accepted afterwards,
device writes are found through their partial index, and a downgrade with operator requests left
is refused rather than losing them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gateway.store import device_writes, migrate
from gateway.store.store import make_engine
from tests.gateway.conftest import pg_url

__all__ = ["pg_url"]

REQUEST = ("INSERT INTO han_requests (id, party_id, kind, body, se_id, target_all, targeted, excluded, state, "
           "created_at) VALUES ({id}, {party}, 'text', '{{}}', 70000, false, 1, '[]', 'accepted', "
           "'2026-01-01 00:00:00')")
DELIVERY = ("INSERT INTO han_deliveries (id, request_id, party_id, esi_id, se_id, se_version, cluster_id, command, "
            "state, attempts, expires_at, created_at, updated_at{extra}) VALUES ({id}, {request}, {party}, "
            "'10443720000000001', 70000, '1.1', 1795, 'display_message', 'delivered', 0, '2026-01-02 00:00:00', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00'{extra_value})")


async def test_migration_keeps_every_row_and_admits_the_operators_requests(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await migrate.upgrade(engine, "0013")
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO parties (id, name, duns, contact_email, status, created_at) "
                "VALUES (1, 'Old', '123456789', 'o@x.test', 'active', '2025-01-01 00:00:00')"))
            await conn.execute(sa.text(REQUEST.format(id=1, party=1)))
            await conn.execute(sa.text(DELIVERY.format(id=1, request=1, party=1, extra="", extra_value="")))
            await conn.execute(sa.text(
                "INSERT INTO han_device_states (delivery_id, eui64, state, at) "
                "VALUES (1, '00:1b:c5:00:00:00:00:01', 'confirmed', '2026-01-01 00:00:05')"))
        await migrate.upgrade(engine, "head")
        async with engine.begin() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT d.id, d.party_id, d.target_eui64, s.state FROM han_deliveries d "
                "JOIN han_device_states s ON s.delivery_id = d.id"))).all()
            assert [tuple(r) for r in rows] == [(1, 1, None, "confirmed")]
            await conn.execute(sa.text(REQUEST.format(id=2, party="NULL")))
            await conn.execute(sa.text(DELIVERY.format(
                id=2, request=2, party="NULL", extra=", target_eui64", extra_value=", '001BC50000000001'")))
            if engine.dialect.name == "sqlite":
                # The store's own queries read the device writes' partial index, not the delivery queue's.
                for query in (device_writes.unanswered_query(datetime(2027, 1, 1, tzinfo=UTC), 100),
                              device_writes.awaiting_query(["001BC50000000001", "001BC50000000002"])):
                    sql = str(query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
                    found = (await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"))).all()
                    plan = " ".join(str(r[-1]) for r in found)
                    assert "ix_han_deliveries_target_eui64" in plan, plan
                assert (await conn.execute(sa.text("PRAGMA integrity_check"))).scalar() == "ok"
                assert (await conn.execute(sa.text("PRAGMA foreign_key_check"))).all() == []
            # Foreign keys still hold: a request of no such party is refused.
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(sa.text(REQUEST.format(id=3, party=99)))

        # Down again: refused while the operator's requests are there, then back to NOT NULL.
        with pytest.raises(RuntimeError, match="operator's requests"):
            await migrate.downgrade(engine, "0013")
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM han_deliveries WHERE id = 2"))
            await conn.execute(sa.text("DELETE FROM han_requests WHERE id = 2"))
        await migrate.downgrade(engine, "0013")
        assert await migrate.current_revision(engine) == "0013"
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(sa.text(REQUEST.format(id=4, party="NULL")))
        async with engine.connect() as conn:
            count = (await conn.execute(sa.text("SELECT count(*) FROM han_device_states"))).scalar()
        assert count == 1
    finally:
        await engine.dispose()
