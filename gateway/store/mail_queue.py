"""The mail queue (table `mail_outbox`): every email is stored before it is sent, and retried
until sent or given up. Sending is gateway/mail_sender.py's job; this module only keeps the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import row_claims
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
                           now: datetime, lease: timedelta) -> QueuedMail:
        """Store a mail claimed for its first attempt by the caller (who tries it at once): it
        is due for anyone else only once `lease` is over, e.g. when the caller died first."""
        stored = self.mail_sealer.seal_text(body) if self.mail_sealer is not None else body
        async with self.engine.begin() as conn:
            row = (await conn.execute(
                mail_outbox.insert().values(recipient=recipient, subject=subject, body=stored,
                                            created_at=now, attempts=1,
                                            next_attempt_at=now + lease)
                .returning(mail_outbox.c.id))).one()
        return QueuedMail(row.id, recipient, subject, body, 1)

    async def mails_queued_since(self, recipient: str, subjects: list[str], since: datetime) -> int:
        """How many mails with one of `subjects` were queued for `recipient` (any case) since `since`."""
        query = sa.select(sa.func.count()).where(
            sa.func.lower(mail_outbox.c.recipient) == recipient.lower(), mail_outbox.c.subject.in_(subjects),
            mail_outbox.c.created_at >= since)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def claim_mail(self, now: datetime, lease: timedelta, limit: int = 1) -> list[QueuedMail]:
        """Claim up to `limit` due mails for one attempt each (gateway/store/row_claims.py): no
        other instance takes them before `now + lease`. `attempts` counts this attempt."""
        due = sa.and_(mail_outbox.c.next_attempt_at <= now, mail_outbox.c.sent_at.is_(None))
        async with self.engine.begin() as conn:
            rows = await row_claims.claim(conn, mail_outbox, row_claims.claimable(
                mail_outbox, due, order_by=[mail_outbox.c.id], limit=limit), lease_until=now + lease)
        sealer = self.mail_sealer
        return [QueuedMail(r.id, r.recipient, r.subject, sealer.open_text(r.body) if sealer else r.body, r.attempts)
                for r in rows]

    async def mail_sent(self, mail: QueuedMail, now: datetime) -> bool:
        """Record the claimed attempt's success; False when the claim had run out and another
        instance claimed the mail since (it may then be sent twice: at least once)."""
        async with self.engine.begin() as conn:
            return await row_claims.finish(conn, mail_outbox, mail.id, mail.attempts,
                                           sent_at=now, next_attempt_at=None, body="")

    async def release_mail(self, claims: dict[int, int], now: datetime) -> int:
        """A graceful stop hands back the mails this instance claimed and did not finish (id ->
        the claim's attempts): due again now, for another instance (gateway/store/row_claims.py)."""
        async with self.engine.begin() as conn:
            return await row_claims.release(conn, mail_outbox, claims, now, mail_outbox.c.sent_at.is_(None))

    async def mail_failed(self, mail: QueuedMail, error: str, retry_at: datetime | None) -> bool:
        """Record the claimed attempt's failure: retried at `retry_at`, or given up (None)."""
        async with self.engine.begin() as conn:
            return await row_claims.finish(conn, mail_outbox, mail.id, mail.attempts,
                                           last_error=error[:500], next_attempt_at=retry_at)

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
