"""The event log's retention (gateway/store/event_retention.py) on SQLite and PostgreSQL: the sweep
deletes events past `[events] retention_days` in bounded batches, under a lease one holder at a
time; keeps an event a webhook still has to send; and `GET /v1/events?after=` from a cursor below
what was swept is a 410 `events_expired` naming the horizon — for that party only."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.config import ConfigError, parse_config
from gateway.store import event_retention, events
from gateway.store.schema import party_events, webhook_outbox
from tests.gateway.conftest import Gateway

RETENTION = timedelta(days=90)


async def _record(gw: Gateway, party_id: int, n: int, days_ago: int) -> list[int]:
    at = gw.clock.now() - timedelta(days=days_ago)
    async with gw.store.engine.begin() as conn:
        return await events.record_events(conn, [events.NewEvent(
            party_id, "agreement.accepted", f"agreement:{i}", {"n": i}, at) for i in range(n)])


async def test_sweep_deletes_old_events_in_batches_and_the_feed_says_410_sqlite(gateway: Gateway) -> None:
    await _sweep_and_feed(gateway)


async def test_sweep_deletes_old_events_in_batches_and_the_feed_says_410_postgresql(gateway_pg: Gateway) -> None:
    await _sweep_and_feed(gateway_pg)


async def _sweep_and_feed(gw: Gateway) -> None:
    a, token_a = await gw.new_party("Acme", "111111111")
    b, token_b = await gw.new_party("Bravo", "222222222")
    old_a = await _record(gw, a, 7, days_ago=120)
    old_b = await _record(gw, b, 2, days_ago=100)
    new_a = await _record(gw, a, 3, days_ago=10)
    # One old event still waiting in a webhook's queue (a dead letter, say): kept whatever its age.
    async with gw.store.engine.begin() as conn:
        webhook_id = (await conn.execute(sa.text(
            "INSERT INTO webhooks (party_id, url, secret, created_at) VALUES (:p, 'https://x.test/h', 's', :t) "
            "RETURNING id"), {"p": a, "t": gw.clock.now()})).scalar_one()
        await conn.execute(webhook_outbox.insert().values(
            webhook_id=webhook_id, request_id=0, body="", created_at=gw.clock.now(), attempts=9,
            next_attempt_at=None, dead_at=gw.clock.now(), event_id=old_a[3], subject="agreement:3"))

    # Another instance holds the lease: this one does nothing.
    assert await event_retention.take_lease(gw.store.engine, event_retention.JOB, "other", gw.clock.now(),
                                            timedelta(minutes=5))
    report = await event_retention.sweep(gw.store.engine, now=gw.clock.now(), retention=RETENTION, holder="me",
                                         batch_size=3, max_batches=2)
    assert report == event_retention.SweepReport(0, 0, leased=False)
    gw.clock.advance(timedelta(minutes=6))  # the other's lease is over

    # Bounded: two batches of three this pass, the rest next pass.
    report = await event_retention.sweep(gw.store.engine, now=gw.clock.now(), retention=RETENTION, holder="me",
                                         batch_size=3, max_batches=2)
    assert (report.deleted, report.batches, report.leased) == (6, 2, True)
    report = await event_retention.sweep(gw.store.engine, now=gw.clock.now(), retention=RETENTION, holder="me",
                                         batch_size=3, max_batches=2)
    assert report.deleted == 2  # 7 + 2 old, one kept for the webhook
    async with gw.store.engine.connect() as conn:
        left = sorted((await conn.execute(sa.select(party_events.c.id))).scalars())
    assert left == sorted([old_a[3], *new_a])

    # The feed: a cursor below Acme's horizon is refused with the horizon; from it, all is there.
    r = await gw.client.get("/v1/events", params={"after": old_a[0]}, headers=gw.auth(token_a))
    assert r.status_code == 410, r.text
    problem = r.json()
    assert problem["code"] == "events_expired" and problem["type"].endswith("#events_expired")
    (error,) = problem["errors"]
    assert (error["field"], error["value"], error["limit"]) == ("after", old_a[0], old_a[-1])
    r = await gw.client.get("/v1/events", params={"after": error["limit"]}, headers=gw.auth(token_a))
    assert r.status_code == 200 and [e["id"] for e in r.json()["items"]] == new_a
    r = await gw.client.get("/v1/events", params={"after": 0}, headers=gw.auth(token_a))
    assert [e["id"] for e in r.json()["items"]] == sorted([old_a[3], *new_a])  # from the start: what is kept
    # Bravo's horizon is its own: Acme's sweep says nothing to Bravo's cursor, and vice versa.
    r = await gw.client.get("/v1/events", params={"after": old_b[0]}, headers=gw.auth(token_b))
    assert r.status_code == 410 and r.json()["errors"][0]["limit"] == old_b[-1]
    r = await gw.client.get("/v1/events", params={"after": old_b[-1]}, headers=gw.auth(token_b))
    assert r.status_code == 200 and r.json()["items"] == []


def test_bad_retention_config_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"events": {"retention_days": -1}}, env={})
    (problem,) = info.value.problems
    assert (problem.key, problem.value) == ("events.retention_days", -1) and "0" in problem.message, problem
