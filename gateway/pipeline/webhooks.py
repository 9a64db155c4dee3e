"""Webhooks: events POSTed signed in the Standard Webhooks format, retried with backoff, stored
before they are sent (never lost across restarts), and delivered in order per request: an event
waits while an earlier one of the same request to the same webhook is not delivered yet.

Dead letters: an event that failed `webhook_max_attempts` times, or is older than
`webhook_max_age_seconds` when it fails again, is dead-lettered (`dead_at`). It is no longer sent
and no longer holds back the later events of its request (a receiver that rejects one event
forever must not stop every later event of that request forever): those go on, in order among
themselves. Dead letters are listed by `GET /v1/webhooks/{id}/dead-letters` and sent again by
`POST …/dead-letters/{event_id}/redeliver` (or `…/dead-letters/redeliver` for all), which puts
them back in the queue as new attempts; a redelivered event then arrives after events that were
sent while it was dead — receivers order by the event's `at`.

Signature (Standard Webhooks): headers `webhook-id`, `webhook-timestamp` (unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">`; the key is the
base64 part of the `whsec_…` secret. Written by hand: a dozen lines of stdlib HMAC, no library
needed for the sending side.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import random
import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from gateway.clock import Clock
from gateway.pipeline.config import PipelineConfig
from gateway.store.schema import webhook_outbox, webhooks
from gateway.store.store import Store

log = logging.getLogger(__name__)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: str) -> bool:
    """What a receiver does (used by the tests and shown in the docs)."""
    expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


class WebhookSender:
    def __init__(self, store: Store, config: PipelineConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.config.webhook_timeout_seconds)
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except Exception:
                log.exception("webhook pass failed")
                sent = 0
            if not sent:
                await asyncio.sleep(self.config.poll_interval_seconds)

    async def run_once(self, limit: int = 200) -> int:
        now = self.clock.now()
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                webhook_outbox, webhooks.c.url, webhooks.c.secret).join(
                webhooks, webhooks.c.id == webhook_outbox.c.webhook_id).where(
                webhook_outbox.c.delivered_at.is_(None), webhook_outbox.c.dead_at.is_(None)).order_by(
                webhook_outbox.c.id).limit(limit))).all()
        blocked: set[tuple[int, int]] = set()
        sent = 0
        for row in rows:
            key = (row.webhook_id, row.request_id)
            if key in blocked:
                continue  # an earlier event of this request is not delivered yet: keep the order
            # First attempts are due at once (event times come from the route's clock).
            if row.attempts and row.next_attempt_at is not None and row.next_attempt_at > now:
                blocked.add(key)
                continue
            ok, error = await self._post(row, now)
            async with self.store.engine.begin() as conn:
                if ok:
                    await conn.execute(webhook_outbox.update().where(webhook_outbox.c.id == row.id).values(
                        delivered_at=now, next_attempt_at=None, attempts=row.attempts + 1))
                    sent += 1
                elif self._dead(row, now):
                    # Set aside: later events of the request are no longer held back by it.
                    await conn.execute(webhook_outbox.update().where(webhook_outbox.c.id == row.id).values(
                        attempts=row.attempts + 1, last_error=(error or "")[:300], next_attempt_at=None,
                        dead_at=now))
                    log.warning("webhook %d event %d dead-lettered after %d attempts: %s", row.webhook_id,
                                row.id, row.attempts + 1, error)
                else:
                    delay = min(self.config.webhook_retry_max_seconds, 2.0 ** row.attempts)
                    delay *= random.uniform(0.5, 1.0)
                    await conn.execute(webhook_outbox.update().where(webhook_outbox.c.id == row.id).values(
                        attempts=row.attempts + 1, last_error=(error or "")[:300],
                        next_attempt_at=now + timedelta(seconds=delay)))
                    blocked.add(key)
        return sent

    def _dead(self, row: Any, now: datetime) -> bool:
        """This failure was the event's last chance: attempts or age used up."""
        too_old = (now - row.created_at).total_seconds() >= self.config.webhook_max_age_seconds
        return bool(row.attempts + 1 >= self.config.webhook_max_attempts or too_old)

    async def _post(self, row: Any, now: datetime) -> tuple[bool, str | None]:
        """`row`: a webhook_outbox row joined with its webhook (id, body, secret, url)."""
        assert self._client is not None
        msg_id = f"msg_{row.id}"
        ts = int(now.timestamp())
        body: str = row.body
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
                   "webhook-signature": sign(row.secret, msg_id, ts, body)}
        try:
            r = await self._client.post(row.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if 200 <= r.status_code < 300:
            return True, None
        return False, f"HTTP {r.status_code}"
