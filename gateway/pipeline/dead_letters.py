"""Webhook dead letters: listing them and putting them back in the queue (see webhooks.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gateway.store.schema import webhook_outbox
from gateway.store.store import Store


@dataclass(frozen=True)
class DeadLetter:
    id: int
    request_id: int
    body: str
    created_at: datetime
    attempts: int
    last_error: str | None
    dead_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "request_id": self.request_id, "event": self.body,
                "created_at": self.created_at.isoformat(), "attempts": self.attempts,
                "last_error": self.last_error, "dead_at": self.dead_at.isoformat()}


async def list_dead_letters(store: Store, webhook_id: int, *, after: int = 0, limit: int = 100) -> list[DeadLetter]:
    """Dead letters of a webhook, oldest first, keyset-paged by event id."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(
            webhook_outbox.c.id, webhook_outbox.c.request_id, webhook_outbox.c.body, webhook_outbox.c.created_at,
            webhook_outbox.c.attempts, webhook_outbox.c.last_error, webhook_outbox.c.dead_at).where(
            webhook_outbox.c.webhook_id == webhook_id, webhook_outbox.c.dead_at.is_not(None),
            webhook_outbox.c.id > after).order_by(webhook_outbox.c.id).limit(limit))).all()
    return [DeadLetter(*row) for row in rows]


async def redeliver(store: Store, webhook_id: int, now: datetime, event_id: int | None = None) -> int:
    """Put dead letters of `webhook_id` (one, or all) back in the queue as fresh attempts; returns
    how many. The sender picks them up on its next pass."""
    query = webhook_outbox.update().where(webhook_outbox.c.webhook_id == webhook_id,
                                          webhook_outbox.c.dead_at.is_not(None))
    if event_id is not None:
        query = query.where(webhook_outbox.c.id == event_id)
    async with store.engine.begin() as conn:
        result = await conn.execute(query.values(dead_at=None, attempts=0, next_attempt_at=now))
    return int(result.rowcount or 0)
