"""The mail queue (table `mail_outbox`): every email is stored before it is sent, and retried
until sent or given up. Sending is gateway/mail_sender.py's job; this module only keeps the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.schema import mail_outbox


class TextSealer(Protocol):
    def seal_text(self, text: str) -> str: ...
    def open_text(self, stored: str) -> str: ...


@dataclass(frozen=True)
class QueuedMail:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int


class MailQueue:
    """The mail queue (mixed into `Store`): store first, send after, retry until sent or given up."""

    engine: AsyncEngine

    # Seals queued mail bodies (they carry single-use consent links) with the operator's key; set
    # by the app when a key is configured (gateway/device_keys.py). None: bodies stored as they are.
    mail_sealer: TextSealer | None = None

    async def enqueue_mail(self, *, recipient: str, subject: str, body: str,
                           now: datetime, first_retry: timedelta) -> QueuedMail:
        stored = self.mail_sealer.seal_text(body) if self.mail_sealer is not None else body
        async with self.engine.begin() as conn:
            row = (await conn.execute(
                mail_outbox.insert().values(recipient=recipient, subject=subject, body=stored,
                                            created_at=now, attempts=0,
                                            next_attempt_at=now + first_retry)
                .returning(mail_outbox.c.id))).one()
        return QueuedMail(row.id, recipient, subject, body, 0)

    async def mail_due(self, now: datetime, limit: int = 100) -> list[QueuedMail]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                mail_outbox.select().where(mail_outbox.c.next_attempt_at <= now)
                .order_by(mail_outbox.c.id).limit(limit))).all()
        sealer = self.mail_sealer
        return [QueuedMail(r.id, r.recipient, r.subject, sealer.open_text(r.body) if sealer else r.body, r.attempts)
                for r in rows]

    async def mail_sent(self, mail_id: int, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(mail_outbox.update().where(mail_outbox.c.id == mail_id).values(
                sent_at=now, next_attempt_at=None, body="", attempts=mail_outbox.c.attempts + 1))

    async def mail_failed(self, mail_id: int, error: str, retry_at: datetime | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(mail_outbox.update().where(mail_outbox.c.id == mail_id).values(
                last_error=error[:500], next_attempt_at=retry_at,
                attempts=mail_outbox.c.attempts + 1))

    async def mail_counts(self) -> dict[str, int]:
        """pending, sent and dead (given up) mails."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                sa.func.count().filter(mail_outbox.c.next_attempt_at.is_not(None)),
                sa.func.count().filter(mail_outbox.c.sent_at.is_not(None)),
                sa.func.count().filter(mail_outbox.c.sent_at.is_(None),
                                       mail_outbox.c.next_attempt_at.is_(None)),
            ))).one()
        return {"pending": rows[0], "sent": rows[1], "dead": rows[2]}
