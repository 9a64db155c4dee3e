"""Migration 0013 on SQLite and PostgreSQL, on a gateway's database as 0012 left it: requests,
their deliveries, the devices' answers (han_device_states, which points at han_deliveries: the
table 0013 rebuilds on SQLite), transitions, frame log, webhook events. Every row keeps its values,
every reference holds, cancel deliveries learn the request they cancel, and a request may then
carry one delivery per premise and SE event (a cancel-all) but still not two for the same event."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.store import migrate
from gateway.store.store import make_engine
from tests.gateway.conftest import ONCOR, ONCOR_2, pg_url
from tests.gateway.migration_rows import broken_references, kept, snapshot

__all__ = ["pg_url"]

T0 = "2026-01-15 12:00:00"
IHD, THERMOSTAT = "00:0D:6F:00:0A:90:12:34", "00:0D:6F:00:0B:11:22:33"

# A text, a load-control event and its cancel, a price with its block-period companion, for two
# premises, as 0012's gateway stored them (han_requests.command, deliveries' own fields NULL).
GATEWAY_AT_0012 = [
    "INSERT INTO parties (id, name, duns, contact_email, status, created_at) "
    f"VALUES (1, 'Volt Energy', '123456789', 'ops@volt.test', 'active', '{T0}')",
    *(f"INSERT INTO premises (esi_id, tdsp, meter_number, customer_email, rep, premise_class, se_version, "
      f"enhanced_meter, status, created_at, updated_at) VALUES ('{esi}', 'oncor', 'MTR-{n}', 'alice@example.test', "
      f"'Volt REP', 'residential', '1.1', false, 'active', '{T0}', '{T0}')" for n, esi in ((1, ONCOR), (2, ONCOR_2))),
    "INSERT INTO agreements (id, party_id, kind, scopes, customer_email, duration_months, state, created_at, "
    "updated_at, invitation_expires_at, resend_count, reminders_sent) VALUES (1, 1, 'in_home_device_services', "
    f"'text,price,load_control', 'alice@example.test', 12, 'active', '{T0}', '{T0}', '2026-02-14 12:00:00', 0, 0)",
    *(f"INSERT INTO agreement_premises (agreement_id, esi_id, meter_number) VALUES (1, '{esi}', 'MTR-{n}')"
      for n, esi in ((1, ONCOR), (2, ONCOR_2))),
    f"INSERT INTO han_devices (id, esi_id, eui64, device_type, status, party_id, created_at, updated_at, "
    f"last_reason) VALUES (1, '{ONCOR}', '000D6F000A901234', 'in_home_display', 'joined', 1, '{T0}', '{T0}', NULL)",
    *(f"INSERT INTO han_requests (id, party_id, kind, body, se_id, command, target_all, fanout_after, targeted, "
      f"excluded, state, cancels_request_id, part_of_request_id, starts_at, ends_at, created_at) VALUES ({rid}, 1, "
      f"'{kind}', '{{\"esi_ids\": [\"{ONCOR}\"]}}', {se}, '{{\"cluster_id\": {cluster}, \"command\": \"{cmd}\", "
      f"\"fields\": {{}}}}', false, NULL, 2, '[]', 'accepted', {cancels}, {part_of}, '{T0}', '2026-01-15 14:00:00', "
      f"'{T0}')"
      for rid, kind, se, cluster, cmd, cancels, part_of in (
          (1, "text", 70000, 1795, "display_message", "NULL", "NULL"),
          (2, "load_control", 70001, 1793, "load_control_event", "NULL", "NULL"),
          (3, "cancel_load_control", 70001, 1793, "cancel_load_control_event", "2", "NULL"),
          (4, "price", 70002, 1792, "publish_price", "NULL", "NULL"),
          (5, "price", 70003, 1792, "publish_block_period", "NULL", "4"))),
    # One delivery per (request, premise); the text's first was sent by a version that stored frames.
    *(f"INSERT INTO han_deliveries (id, request_id, party_id, esi_id, agreement_id, se_id, se_version, cluster_id, "
      f"command, fields, frame, state, attempts, next_attempt_at, expires_at, reference, reason, created_at, "
      f"updated_at) VALUES ({did}, {rid}, 1, '{esi}', 1, {se}, '1.1', {cluster}, '{cmd}', NULL, {frame}, '{state}', "
      f"{attempts}, {nxt}, '2026-01-16 12:00:00', {ref}, {reason}, '{T0}', '2026-01-15 12:00:05')"
      for did, rid, esi, se, cluster, cmd, frame, state, attempts, nxt, ref, reason in (
          (1, 1, ONCOR, 70000, 1795, "display_message", "'0900007011010000'", "delivered", 1, "NULL",
           "'hgw-1'", "NULL"),
          (2, 1, ONCOR_2, 70000, 1795, "display_message", "NULL", "failed", 3, "NULL", "'hgw-2'",
           "'head-end: meter unreachable'"),
          (3, 2, ONCOR, 70001, 1793, "load_control_event", "NULL", "delivered", 1, "NULL", "'hgw-3'", "NULL"),
          (4, 3, ONCOR, 70001, 1793, "cancel_load_control_event", "NULL", "submitted", 1, "NULL", "'hgw-4'", "NULL"),
          (5, 4, ONCOR, 70002, 1792, "publish_price", "NULL", "queued", 0, "'2026-01-15 12:01:00'", "NULL", "NULL"),
          (6, 5, ONCOR, 70003, 1792, "publish_block_period", "NULL", "queued", 0, "'2026-01-15 12:01:00'", "NULL",
           "NULL"))),
    # The devices' answers: what 0013's rebuild of han_deliveries used to trip over.
    *(f"INSERT INTO han_device_states (delivery_id, eui64, state, at, detail) VALUES ({did}, '{eui}', '{state}', "
      f"'2026-01-15 12:00:{sec:02d}', {detail})"
      for did, eui, state, sec, detail in (
          (1, IHD, "displayed", 10, "NULL"), (1, THERMOSTAT, "confirmed", 11, "'read by customer'"),
          (3, THERMOSTAT, "event_started", 20, "'EventStatus 0x02'"), (3, IHD, "received", 21, "NULL"),
          (4, THERMOSTAT, "event_cancelled", 30, "'EventStatus 0x06'"))),
    *(f"INSERT INTO han_transitions (id, delivery_id, eui64, state, at, detail) VALUES ({n}, {did}, {eui}, "
      f"'{state}', '2026-01-15 12:00:{n:02d}', NULL)"
      for n, did, eui, state in ((1, 1, "NULL", "submitted"), (2, 1, "NULL", "delivered"),
                                 (3, 1, f"'{IHD}'", "displayed"), (4, 2, "NULL", "failed"),
                                 (5, 3, "NULL", "delivered"), (6, 3, f"'{THERMOSTAT}'", "event_started"),
                                 (7, 4, "NULL", "submitted"))),
    f"INSERT INTO lce_events (id, esi_id, issuer_event_id, party_id, request_id, device_class, criticality, "
    f"starts_at, ends_at, state) VALUES (1, '{ONCOR}', 70001, 1, 2, 4, 3, '{T0}', '2026-01-15 14:00:00', "
    "'cancelled')",
    *(f"INSERT INTO han_frame_log (id, at, direction, esi_id, eui64, request_id, delivery_id, agreement_id, "
      f"cluster_id, command, frame) VALUES ({n}, '2026-01-15 12:00:{n:02d}', '{way}', '{ONCOR}', {eui}, {rid}, {did}, "
      f"1, {cluster}, '{cmd}', {frame})"
      for n, way, eui, rid, did, cluster, cmd, frame in (
          (1, "out", "NULL", 1, 1, 1795, "display_message", "NULL"),
          (2, "in", f"'{IHD}'", 1, 1, 1795, "message_confirmation", "'19010170110100'"),
          (3, "out", "NULL", 2, 3, 1793, "load_control_event", "NULL"),
          (4, "in", f"'{THERMOSTAT}'", 2, 3, 1793, "report_event_status", "'0902007111010002'"))),
    f"INSERT INTO webhooks (id, party_id, url, secret, created_at, deleted_at) VALUES (1, 1, "
    f"'https://hooks.volt.test/han', 'whsec-0123456789abcdef', '{T0}', NULL)",
    *(f"INSERT INTO webhook_outbox (id, webhook_id, request_id, body, created_at, attempts, next_attempt_at, "
      f"delivered_at, last_error, dead_at) VALUES ({n}, 1, {rid}, '{{\"event\": \"{ev}\", \"request_id\": {rid}}}', "
      f"'{T0}', {att}, {nxt}, {done}, {err}, {dead})"
      for n, rid, ev, att, nxt, done, err, dead in (
          (1, 1, "delivery.delivered", 1, "NULL", "'2026-01-15 12:00:12'", "NULL", "NULL"),
          (2, 1, "delivery.failed", 8, "NULL", "NULL", "'HTTP 503'", "'2026-01-15 13:00:00'"),
          (3, 2, "device.event_started", 0, "'2026-01-15 12:00:25'", "NULL", "NULL", "NULL"))),
    f"INSERT INTO han_device_events (id, esi_id, eui64, operation_id, state, reason, detail, at) VALUES "
    f"(1, '{ONCOR}', '000D6F000A901234', NULL, 'joined', NULL, NULL, '{T0}')",
]

ROW = ("INSERT INTO han_deliveries (request_id, party_id, esi_id, se_id, se_version, cluster_id, command, state, "
       "attempts, expires_at, created_at, updated_at) VALUES ({r}, 1, '10443720000000001', {se}, '1.1', 1793, '{c}', "
       "'delivered', 0, '2026-01-02 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")


async def test_a_gateway_database_at_0012_upgrades_with_every_row_and_reference(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await migrate.upgrade(engine, "0012")
        async with engine.begin() as conn:
            for statement in GATEWAY_AT_0012:
                await conn.execute(sa.text(statement))
            before = await conn.run_sync(snapshot)
        assert len(before["han_device_states"]) == 5 and len(before["han_deliveries"]) == 6
        await migrate.upgrade(engine, "head")
        assert await migrate.current_revision(engine) == migrate.revisions()[-1]
        async with engine.connect() as conn:
            after = await conn.run_sync(snapshot)
            assert await conn.run_sync(broken_references) == []
        for table in before:
            assert kept(before, after, table) == before[table], table
        # Only the cancel's delivery names the request it cancels (the load-control event).
        assert [(d["id"], d["cancels_request_id"]) for d in after["han_deliveries"]] == [
            (1, None), (2, None), (3, None), (4, 2), (5, None), (6, None)]
    finally:
        await engine.dispose()


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
