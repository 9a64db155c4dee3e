"""Webhook targets and their event queue (tables `webhooks`, `webhook_outbox`): registrations, the
events waiting to be sent in each subject's order, attempts, and dead letters.

Sending (HTTP, signatures, back-off) is gateway/pipeline/webhooks.py's job; events are written in
the transaction of the change that produced them (gateway/store/events.py `record_events` records
them in the event log and queues them here with `enqueue`, one row per live webhook pointing at
the event). Order: an event waits while an earlier one of the same `subject` (`request:12`,
`agreement:5`, …) to the same webhook is undelivered and not dead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import row_claims
from gateway.store.bulk import insert_many
from gateway.store.mail_queue import TextSealer
from gateway.store.schema import party_events, webhook_outbox, webhooks


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    created_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    id: int
    event_id: int | None
    """The event's id in the event log (None: queued before the log existed)."""
    request_id: int
    subject: str | None
    body: str
    created_at: datetime
    attempts: int
    last_error: str | None
    dead_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event_id": self.event_id, "request_id": self.request_id,
                "subject": self.subject, "event": self.body,
                "created_at": self.created_at.isoformat(), "attempts": self.attempts,
                "last_error": self.last_error, "dead_at": self.dead_at.isoformat()}


# -- registrations ------------------------------------------------------------------------------

async def create_webhook(engine: AsyncEngine, *, party_id: int | None, url: str, sealed_secret: str,
                         now: datetime) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(webhooks.insert().values(
            party_id=party_id, url=url, secret=sealed_secret, created_at=now))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def list_webhooks(engine: AsyncEngine, party_id: int | None, *, after: int, limit: int) -> list[Webhook]:
    """The party's live webhooks, oldest first, keyset-paged by id."""
    async with engine.connect() as conn:
        rows = (await conn.execute(webhooks.select().where(
            webhooks.c.party_id == party_id, webhooks.c.deleted_at.is_(None),
            webhooks.c.id > after).order_by(webhooks.c.id).limit(limit))).all()
    return [Webhook(r.id, r.url, r.created_at) for r in rows]


async def delete_webhook(engine: AsyncEngine, webhook_id: int, party_id: int | None, now: datetime) -> bool:
    """Stop the party's webhook; False when it has no such live webhook."""
    async with engine.begin() as conn:
        result = await conn.execute(webhooks.update().where(
            webhooks.c.id == webhook_id, webhooks.c.party_id == party_id,
            webhooks.c.deleted_at.is_(None)).values(deleted_at=now))
    return bool(result.rowcount)


async def owns_webhook(engine: AsyncEngine, webhook_id: int, party_id: int | None) -> bool:
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(webhooks.c.id).where(
            webhooks.c.id == webhook_id, webhooks.c.party_id == party_id,
            webhooks.c.deleted_at.is_(None)))).first()
    return found is not None


async def seal_secrets(engine: AsyncEngine, sealer: TextSealer) -> int:
    """Seal the signing secrets stored in clear before sealing existed; returns how many."""
    async with engine.begin() as conn:
        rows = (await conn.execute(sa.select(webhooks.c.id, webhooks.c.secret).where(
            webhooks.c.secret.like("whsec_%")))).all()
        for row in rows:
            await conn.execute(webhooks.update().where(webhooks.c.id == row.id).values(
                secret=sealer.seal_text(row.secret)))
    return len(rows)


# -- the event queue ----------------------------------------------------------------------------

async def live_webhooks(conn: AsyncConnection, party_ids: set[int]) -> dict[int, list[int]]:
    """Party id -> ids of its live webhooks, for the parties that have any (in the caller's
    transaction: the events it queues are for the webhooks registered as it commits)."""
    hooks = (await conn.execute(sa.select(webhooks.c.id, webhooks.c.party_id).where(
        webhooks.c.party_id.in_(party_ids), webhooks.c.deleted_at.is_(None)))).all()
    by_party: dict[int, list[int]] = {}
    for hook_id, party_id in hooks:
        by_party.setdefault(party_id, []).append(hook_id)
    return by_party


async def any_live_webhook(conn: AsyncConnection, party_ids: set[int]) -> bool:
    """Whether any of the parties has a live webhook (one indexed probe: most batches have none,
    and then no event is built at all)."""
    return (await conn.execute(sa.select(webhooks.c.id).where(
        webhooks.c.party_id.in_(party_ids), webhooks.c.deleted_at.is_(None)).limit(1))).first() is not None


async def enqueue(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Queue events (webhook_id, request_id, body, created_at; subject and event_id as
    record_events gives them — without a subject, the request's) in the caller's transaction, due
    at once."""
    if rows:
        await insert_many(conn, webhook_outbox, [
            {"subject": f"request:{row['request_id']}", "event_id": None, **row, "attempts": 0,
             "next_attempt_at": row["created_at"]} for row in rows])


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """An event that may be attempted now: undelivered, not dead, and first attempts at once
    (event times come from the route's clock), retries at their time. A claimed event counts an
    attempt and is due again only when its lease is over (gateway/store/row_claims.py)."""
    return sa.and_(webhook_outbox.c.delivered_at.is_(None), webhook_outbox.c.dead_at.is_(None), sa.or_(
        webhook_outbox.c.attempts == 0, webhook_outbox.c.next_attempt_at.is_(None),
        webhook_outbox.c.next_attempt_at <= now))


def _body() -> sa.ColumnElement[str]:
    """The body an outbox row sends: its event's (one copy in the log, however many webhooks), or
    its own when queued before the log existed."""
    return sa.func.coalesce(party_events.c.body, webhook_outbox.c.body).label("body")


def _with_body() -> Any:
    return webhook_outbox.outerjoin(party_events, party_events.c.id == webhook_outbox.c.event_id)


def _with_target() -> sa.Select[Any]:
    """webhook_outbox rows (body as sent) joined with their webhook's url and secret (what sending
    needs)."""
    return sa.select(*(c for c in webhook_outbox.c if c.name != "body"), _body(), webhooks.c.url,
                     webhooks.c.secret, webhooks.c.party_id).select_from(_with_body().join(
                         webhooks, webhooks.c.id == webhook_outbox.c.webhook_id))


def _firsts(webhook_id: int | None = None) -> sa.Subquery:
    """The first undelivered event of each (webhook, subject): only it may be sent without
    breaking the order of the subject's events."""
    pending = sa.select(sa.func.min(webhook_outbox.c.id).label("id")).where(
        webhook_outbox.c.delivered_at.is_(None), webhook_outbox.c.dead_at.is_(None))
    if webhook_id is not None:
        pending = pending.where(webhook_outbox.c.webhook_id == webhook_id)
    return pending.group_by(webhook_outbox.c.webhook_id, webhook_outbox.c.subject).subquery()


def _heads(now: datetime) -> sa.Select[Any]:
    """The first events of each (webhook, subject) that are due."""
    firsts = _firsts()
    return _with_target().join(firsts, firsts.c.id == webhook_outbox.c.id).where(
        _due(now), webhooks.c.deleted_at.is_(None))


async def ready_webhooks(engine: AsyncEngine, now: datetime) -> list[tuple[int, int]]:
    """(webhook id, party id) of the webhooks with a ready event, the longest waiting first."""
    heads = _heads(now).subquery()
    query = sa.select(heads.c.webhook_id, webhooks.c.party_id).join(
        webhooks, webhooks.c.id == heads.c.webhook_id).group_by(
        heads.c.webhook_id, webhooks.c.party_id).order_by(sa.func.min(heads.c.id))
    async with engine.connect() as conn:
        return [(int(h), int(p)) for h, p in (await conn.execute(query)).all()]


async def claim_heads(engine: AsyncEngine, webhook_id: int, now: datetime, lease_until: datetime,
                      limit: int = 1) -> list[Any]:
    """Claim the webhook's ready first events (up to `limit`) for one attempt each, until
    `lease_until` (gateway/store/row_claims.py): rows joined with url and secret. While a head is
    claimed the rest of its subject waits behind it, on every instance."""
    firsts = _firsts(webhook_id)
    ids = row_claims.claimable(
        webhook_outbox, sa.and_(_due(now), webhooks.c.deleted_at.is_(None)), order_by=[webhook_outbox.c.id],
        limit=limit, of=webhook_outbox, select_from=webhook_outbox.join(firsts, firsts.c.id == webhook_outbox.c.id)
        .join(webhooks, webhooks.c.id == webhook_outbox.c.webhook_id))
    async with engine.begin() as conn:
        claimed = await row_claims.claim(conn, webhook_outbox, ids, lease_until=lease_until)
        if not claimed:
            return []
        return list((await conn.execute(_with_target().where(
            webhook_outbox.c.id.in_([r.id for r in claimed])).order_by(webhook_outbox.c.id))).all())


def _claimed(row: Any, claimed: Any) -> SimpleNamespace:
    """`row` (read with its url and secret) as its claim left it."""
    return SimpleNamespace(**{**row._mapping, "attempts": claimed.attempts,
                              "next_attempt_at": claimed.next_attempt_at})


async def extend_claim(engine: AsyncEngine, row: Any, lease_until: datetime) -> bool:
    """Move the lease of a claimed event (from `claim_heads`) on, before its attempt; False when
    it is no longer this claim's (its lease ran out and another instance took it)."""
    async with engine.begin() as conn:
        return await row_claims.extend(conn, webhook_outbox, row.id, row.attempts, lease_until)


async def following_events(engine: AsyncEngine, head: Any, limit: int) -> Sequence[Any]:
    """The undelivered events of `head`'s subject after it, in order (same row shape as a head)."""
    async with engine.connect() as conn:
        return list((await conn.execute(_with_target().where(
            webhook_outbox.c.webhook_id == head.webhook_id, webhook_outbox.c.subject == head.subject,
            webhook_outbox.c.id > head.id, webhook_outbox.c.delivered_at.is_(None),
            webhook_outbox.c.dead_at.is_(None), webhooks.c.deleted_at.is_(None)).order_by(
            webhook_outbox.c.id).limit(limit))).all())


DeadLetterHook = Callable[[AsyncConnection, Any, dict[str, Any]], Awaitable[None]]


async def record_attempt_and_claim(engine: AsyncEngine, row: Any, values: dict[str, Any], upcoming: Any | None, *,
                                   now: datetime, lease_until: datetime,
                                   on_dead: DeadLetterHook | None = None) -> tuple[bool, Any | None]:
    """Record a claimed attempt's outcome (delivered_at, or last_error with next_attempt_at or
    dead_at) — dropped when the claim ran out and another instance claimed the event since (its
    attempt decides then) — and, in the same transaction, claim
    `upcoming` (the subject's next event, read earlier with `following_events`) if it is still as
    read and due — its predecessor is delivered now, so other instances may be after it too: one
    of them gets it. One commit per event of a run. (recorded, the claimed upcoming event or None).
    `on_dead(conn, row, values)` runs in the same transaction when the outcome recorded is a dead
    letter (gateway/store/events.py `record_dead_letter`)."""
    async with engine.begin() as conn:
        recorded = await row_claims.finish(conn, webhook_outbox, row.id, row.attempts, **values)
        if recorded and on_dead is not None and "dead_at" in values:
            await on_dead(conn, row, values)
        if not recorded or upcoming is None:
            return recorded, None
        claimed = await row_claims.claim_one(conn, webhook_outbox, upcoming.id, upcoming.attempts, _due(now),
                                             lease_until=lease_until)
    return True, _claimed(upcoming, claimed) if claimed is not None else None


async def release_claims(engine: AsyncEngine, claims: dict[int, int], now: datetime) -> int:
    """A graceful stop hands back the events this instance claimed (id -> the claim's attempts)
    and has not finished: due again now, for another instance (gateway/store/row_claims.py)."""
    async with engine.begin() as conn:
        return await row_claims.release(conn, webhook_outbox, claims, now, webhook_outbox.c.delivered_at.is_(None),
                                        webhook_outbox.c.dead_at.is_(None))


# -- dead letters -------------------------------------------------------------------------------

async def list_dead_letters(engine: AsyncEngine, webhook_id: int, *, after: int = 0,
                            limit: int = 100) -> list[DeadLetter]:
    """Dead letters of a webhook, oldest first, keyset-paged by event id."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(
            webhook_outbox.c.id, webhook_outbox.c.event_id, webhook_outbox.c.request_id, webhook_outbox.c.subject,
            _body(), webhook_outbox.c.created_at, webhook_outbox.c.attempts, webhook_outbox.c.last_error,
            webhook_outbox.c.dead_at).select_from(_with_body()).where(
            webhook_outbox.c.webhook_id == webhook_id, webhook_outbox.c.dead_at.is_not(None),
            webhook_outbox.c.id > after).order_by(webhook_outbox.c.id).limit(limit))).all()
    return [DeadLetter(*row) for row in rows]


async def redeliver(engine: AsyncEngine, webhook_id: int, now: datetime, event_id: int | None = None) -> int:
    """Put dead letters of `webhook_id` (one, or all) back in the queue as fresh attempts; returns
    how many. The sender picks them up on its next pass."""
    query = webhook_outbox.update().where(webhook_outbox.c.webhook_id == webhook_id,
                                          webhook_outbox.c.dead_at.is_not(None))
    if event_id is not None:
        query = query.where(webhook_outbox.c.id == event_id)
    async with engine.begin() as conn:
        result = await conn.execute(query.values(dead_at=None, attempts=0, next_attempt_at=now))
    return int(result.rowcount or 0)
