"""The one event log of third parties (table `party_events`, migration 0018) — the contract every
producer and every channel shares.

Producers (agreement lifecycle, device provisioning, request deliveries, webhook dead letters)
build `NewEvent`s and call `record_events(conn, events)` inside the transaction of the change the
events tell about, so an event exists exactly when its change is committed. `record_events`:

- gives each event its id, the event id on every channel: the `"id"` in the body, the Standard
  Webhooks `webhook-id` (`evt_<id>`), the MQTT event id and the `GET /v1/events?after=` cursor;
- stores the body as it is sent: `{"id": …, "type": …, **body}` (JSON), with `subject`, the
  ordering key (`request:<id>`, `agreement:<id>`, `device:<esi_id>:<eui64>`, `webhook:<id>`):
  events of one subject reach a channel in the order of their ids;
- queues one `webhook_outbox` row per live webhook of the party (pointing at the event:
  `event_id`; the sender reads the body from here), ordered by subject (gateway/store/webhooks.py)
  — except `webhook.dead_letter`, kept in the log only (`record_dead_letter` says why);
- **cost rule**: delivery-state events (`delivery.*`, one per premise and transition: a fan-out to
  a million premises makes millions) are written only for parties with an event channel
  (`party_has_event_channel`: a live webhook; channels registered with
  `register_event_channel`, e.g. MQTT credentials). Without one, nothing is written for them —
  not even to the feed. Every other type is always written (there are few of them).

Readers (the MQTT publisher, `GET /v1/events`) page with `events_after(engine, party_id, after_id,
limit)`. Ids of one party are committed in increasing order, so a reader that has seen id N never
gets an id below N later: on PostgreSQL `record_events` holds the party's advisory lock
(advisory_locks.PARTY_EVENTS) from taking its ids to the commit; SQLite has one writer at a time.
A transaction should record all its events of a party in one call where it can (a second call
for other parties may wait on a lock in a cycle with another transaction: PostgreSQL then fails
one of them, which is rolled back like any failed write).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import advisory_locks, webhooks
from gateway.store.bulk import insert_many
from gateway.store.schema import party_events

DELIVERY_PREFIX = "delivery."
"""Types under the cost rule: written only for parties with an event channel."""

MAX_SUBJECT = 100
MAX_TYPE = 64


@dataclass(frozen=True)
class NewEvent:
    """An event to record. `body` holds the type's fields; `id` and `type` are put in front of
    them by `record_events`."""

    party_id: int
    type: str
    subject: str
    body: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class Event:
    """A recorded event: `body` is the JSON text exactly as sent."""

    id: int
    party_id: int
    type: str
    subject: str
    body: str
    created_at: datetime


ChannelProbe = Callable[[AsyncConnection, set[int]], Awaitable[set[int]]]
"""Which of these parties can receive events on a channel (in the caller's transaction)."""


async def _webhook_channel(conn: AsyncConnection, party_ids: set[int]) -> set[int]:
    return set(await webhooks.live_webhooks(conn, party_ids))


_CHANNELS: list[ChannelProbe] = [_webhook_channel]


def register_event_channel(probe: ChannelProbe) -> None:
    """Add a channel to the cost rule's test — the hook for MQTT credentials (issue 15, MQTT API):
    a party with credentials there has a channel, so its delivery events are written."""
    if probe not in _CHANNELS:
        _CHANNELS.append(probe)


async def party_has_event_channel(conn: AsyncConnection, party_ids: Iterable[int]) -> set[int]:
    """The parties among `party_ids` that have an event channel (empty, and falsy, when none has):
    one indexed probe per channel, and none more once every party is found."""
    wanted = set(party_ids)
    found: set[int] = set()
    for probe in _CHANNELS:
        if not wanted - found:
            break
        found |= await probe(conn, wanted - found)
    return found


def subject_of_request(request_id: int) -> str:
    return f"request:{request_id}"


def subject_of_agreement(agreement_id: int) -> str:
    return f"agreement:{agreement_id}"


def subject_of_device(esi_id: str, eui64: str | None) -> str:
    return f"device:{esi_id}:{eui64}" if eui64 else f"device:{esi_id}"


async def _reserve_ids(conn: AsyncConnection, n: int) -> list[int]:
    """`n` new event ids, increasing: taken before the insert because each body carries its id."""
    if conn.dialect.name == "postgresql":
        ids = (await conn.execute(sa.text(
            "SELECT nextval(pg_get_serial_sequence('party_events', 'id')) FROM generate_series(1, :n)"),
            {"n": n})).scalars().all()
        return sorted(int(i) for i in ids)
    # SQLite: one writer at a time (gateway/store/sqlite_writes.py, one process per file), so the
    # next ids are the table's largest + 1… within this write transaction. A second process writing
    # the same file at once would fail on the primary key, never reuse an id silently.
    top = (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(party_events.c.id), 0)))).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))


async def record_events(conn: AsyncConnection, events: Sequence[NewEvent], *,
                        with_channel: set[int] | None = None, to_webhooks: bool = True) -> list[int]:
    """Record `events` in the caller's transaction and queue them for the parties' webhooks.
    Returns the ids of the events written, in the order given (delivery events of parties without
    a channel are left out). `with_channel`: the parties known to have a channel, when the caller
    has just asked `party_has_event_channel` (not asked again). `to_webhooks` False: kept in the
    log only (the feed and MQTT read it), not queued for webhooks (dead letters)."""
    if not events:
        return []
    if any(e.type.startswith(DELIVERY_PREFIX) for e in events):
        if with_channel is None:
            with_channel = await party_has_event_channel(
                conn, {e.party_id for e in events if e.type.startswith(DELIVERY_PREFIX)})
        events = [e for e in events if not e.type.startswith(DELIVERY_PREFIX) or e.party_id in with_channel]
        if not events:
            return []
    for e in events:
        if len(e.type) > MAX_TYPE or len(e.subject) > MAX_SUBJECT:
            raise ValueError(f"event type {e.type!r} / subject {e.subject!r} longer than "
                             f"{MAX_TYPE} / {MAX_SUBJECT} characters")
    parties = {e.party_id for e in events}
    await advisory_locks.lock_keys(conn, advisory_locks.PARTY_EVENTS, parties)
    ids = await _reserve_ids(conn, len(events))
    bodies = [json.dumps({"id": event_id, "type": e.type, **_fields(e)})
              for event_id, e in zip(ids, events, strict=True)]
    await insert_many(conn, party_events, [
        {"id": event_id, "party_id": e.party_id, "type": e.type, "subject": e.subject, "body": body,
         "created_at": e.at} for event_id, e, body in zip(ids, events, bodies, strict=True)])
    hooks = await webhooks.live_webhooks(conn, parties) if to_webhooks else {}
    if hooks:
        await webhooks.enqueue(conn, [
            {"webhook_id": hook_id, "request_id": _request_id(e), "body": "", "created_at": e.at,
             "subject": e.subject, "event_id": event_id}
            for event_id, e in zip(ids, events, strict=True) for hook_id in hooks.get(e.party_id, [])])
    return ids


DEAD_LETTER = "webhook.dead_letter"


async def record_dead_letter(conn: AsyncConnection, row: Any, values: Mapping[str, Any]) -> None:
    """`webhook.dead_letter`, in the transaction that dead-letters an outbox row (`row`: the row as
    sent, with its webhook's party_id; `values`: what was recorded, `dead_at` and `last_error`).

    It is listed (GET /v1/events, MQTT), not sent on webhooks: not on the webhook that gave up
    (that receiver is the one failing: the notice would fail as well, and its dead letter would
    announce itself again, without end), and not on the party's other webhooks either — a party
    whose receivers are broken would have every dead letter of one multiplied onto all the
    others, each attempt there waiting out its timeout ahead of their own events (seen in
    tests/pipeline/test_webhook_isolation.py)."""
    try:
        dead = json.loads(row.body)
    except ValueError:
        dead = {}
    kind = dead.get("type") if isinstance(dead, dict) else None
    at = values["dead_at"]
    await record_events(conn, [NewEvent(row.party_id, DEAD_LETTER, f"webhook:{row.webhook_id}", {
        "webhook_id": row.webhook_id, "event_id": row.event_id, "event_type": kind,
        "event_subject": row.subject, "attempts": row.attempts, "last_error": values.get("last_error"),
        "at": at.isoformat()}, at)], to_webhooks=False)


def _fields(event: NewEvent) -> dict[str, Any]:
    """The body's own fields: `id` and `type` are the log's, never the producer's."""
    return {k: v for k, v in event.body.items() if k not in ("id", "type")}


def _request_id(event: NewEvent) -> int:
    """The outbox row's request_id (shown with dead letters): the request's, 0 when none."""
    value = event.body.get("request_id")
    return value if isinstance(value, int) else 0


async def events_after(engine: AsyncEngine, party_id: int, after_id: int, limit: int) -> list[Event]:
    """The party's events with ids above `after_id`, oldest first, at most `limit` (keyset: the
    last id read is the next call's `after_id`)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(
            party_events.c.id, party_events.c.party_id, party_events.c.type, party_events.c.subject,
            party_events.c.body, party_events.c.created_at).where(
            party_events.c.party_id == party_id, party_events.c.id > after_id).order_by(
            party_events.c.id).limit(limit))).all()
    return [Event(int(r.id), r.party_id, r.type, r.subject, r.body, r.created_at) for r in rows]
