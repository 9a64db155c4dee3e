"""Migration 0018 on SQLite and PostgreSQL, on webhook events queued as 0016 left them: each keeps
its body (it has no event in the log), gets its request as its ordering subject, and the sender's
queries still order and send it: a dead letter is listed with its body, the first undelivered
event of each request is the one ready, its request's next waits behind it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.store import migrate
from gateway.store import webhooks as webhook_store
from gateway.store.store import make_engine
from tests.gateway.conftest import db_url, pg_url

__all__ = ["db_url", "pg_url"]

T0 = "2026-01-15 12:00:00"
NOW = datetime(2026, 1, 15, 12, 5, tzinfo=UTC)

AT_0016 = [
    "INSERT INTO parties (id, name, duns, contact_email, status, created_at) "
    f"VALUES (1, 'Volt Energy', '123456789', 'ops@volt.test', 'active', '{T0}')",
    f"INSERT INTO webhooks (id, party_id, url, secret, created_at) VALUES (1, 1, 'https://r.test/h', 's', '{T0}')",
    # Request 7: a dead letter, then two undelivered events; request 8: one undelivered event;
    # request 0 (a provisioning event, as 0016's gateway queued them): one.
    *(f"INSERT INTO webhook_outbox (id, webhook_id, request_id, body, created_at, attempts, next_attempt_at, "
      f"delivered_at, last_error, dead_at) VALUES ({oid}, 1, {rid}, '{{\"n\": {oid}}}', '{T0}', {attempts}, "
      f"{nxt}, NULL, {err}, {dead})"
      for oid, rid, attempts, nxt, err, dead in (
          (1, 7, 15, "NULL", "'HTTP 500'", f"'{T0}'"),
          (2, 7, 0, f"'{T0}'", "NULL", "NULL"),
          (3, 7, 0, f"'{T0}'", "NULL", "NULL"),
          (4, 8, 0, f"'{T0}'", "NULL", "NULL"),
          (5, 0, 0, f"'{T0}'", "NULL", "NULL"))),
]


async def test_queued_webhook_events_keep_body_and_order_through_0018(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await migrate.upgrade(engine, "0016")
        async with engine.begin() as conn:
            for statement in AT_0016:
                await conn.execute(sa.text(statement))
        await migrate.upgrade(engine, "0018")
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT id, subject, event_id FROM webhook_outbox ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "request:7", None), (2, "request:7", None), (3, "request:7", None),
                                           (4, "request:8", None), (5, "request:0", None)]
        dead = await webhook_store.list_dead_letters(engine, 1)
        assert [(d.id, d.body, d.event_id, d.subject) for d in dead] == [(1, '{"n": 1}', None, "request:7")]
        assert await webhook_store.ready_webhooks(engine, NOW) == [(1, 1)]
        heads = await webhook_store.claim_heads(engine, 1, NOW, NOW, limit=10)
        # The first undelivered event of each subject, with its own body (no event in the log).
        assert [(h.id, h.body, h.event_id, h.party_id) for h in heads] == [
            (2, '{"n": 2}', None, 1), (4, '{"n": 4}', None, 1), (5, '{"n": 5}', None, 1)]
        following = await webhook_store.following_events(engine, heads[0], 10)
        assert [(f.id, f.body) for f in following] == [(3, '{"n": 3}')]
    finally:
        await engine.dispose()
