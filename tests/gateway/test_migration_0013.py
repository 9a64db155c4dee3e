"""Migration 0013 on SQLite and PostgreSQL: deliveries written before it keep their rows, cancel
deliveries learn the request they cancel, and a request may then carry one delivery per premise
and SE event (a cancel-all) but still not two for the same event."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.store import migrate
from gateway.store.store import make_engine
from tests.gateway.conftest import pg_url

__all__ = ["pg_url"]

ROW = ("INSERT INTO han_deliveries (request_id, party_id, esi_id, se_id, se_version, cluster_id, command, state, "
       "attempts, expires_at, created_at, updated_at) VALUES ({r}, 1, '10443720000000001', {se}, '1.1', 1793, '{c}', "
       "'delivered', 0, '2026-01-02 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")


async def test_cancel_deliveries_name_their_request_and_one_request_cancels_several_events(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await migrate.upgrade(engine, "0012")
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO parties (id, name, duns, contact_email, status, created_at) "
                "VALUES (1, 'Old', '123456789', 'o@x.test', 'active', '2025-01-01 00:00:00')"))
            for rid, kind, se, cancels in ((1, "load_control", 70000, "NULL"), (2, "cancel_load_control", 70000, "1")):
                await conn.execute(sa.text(
                    "INSERT INTO han_requests (id, party_id, kind, body, se_id, target_all, targeted, excluded, state, "
                    f"cancels_request_id, created_at) VALUES ({rid}, 1, '{kind}', '{{}}', {se}, false, 1, '[]', "
                    f"'accepted', {cancels}, '2026-01-01 00:00:00')"))
            await conn.execute(sa.text(ROW.format(r=1, se=70000, c="load_control_event")))
            await conn.execute(sa.text(ROW.format(r=2, se=70000, c="cancel_load_control_event")))
        await migrate.upgrade(engine, "head")
        async with engine.begin() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT request_id, cancels_request_id FROM han_deliveries ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [(1, None), (2, 1)]
            await conn.execute(sa.text(ROW.format(r=2, se=70001, c="cancel_load_control_event")))
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(sa.text(ROW.format(r=2, se=70001, c="cancel_load_control_event")))
    finally:
        await engine.dispose()
