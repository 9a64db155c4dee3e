"""Every email is stored in the mail queue first, then sent; failed sends are retried with back-off.

An invitation accepted by the API is never lost to a mail-server hiccup: the first attempt is made
at once, retries run with the lifecycle timer. After MAX_ATTEMPTS the mail stays as a dead letter
(visible in `mail_counts()`), its error recorded.

Several instances on one database: each attempt is made by the one instance that claimed the mail
for `[mail] lease_seconds` (gateway/store/row_claims.py) — the first by the instance that stored
it, retries by whichever instance's timer claims them. A mail whose instance died mid-attempt is
due again once the lease is over. At least once: a mail the server took just before its instance
died, before the success was recorded, is sent again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from gateway.clock import Clock
from gateway.mail import Mailer, MailError, build_message
from gateway.store.mail_queue import QueuedMail
from gateway.store.store import Store
from gateway.store.unit_of_work import after_commit

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (60, 300, 1800, 7200, 21600)  # then every 6 h
MAX_ATTEMPTS = 12


class MailSender:
    """Sends the mail queue (gateway/store/mail_queue.py): each mail stored first, sent after, retried."""

    def __init__(self, store: Store, mailer: Mailer, sender: str, clock: Clock,
                 lease: timedelta = timedelta(seconds=120)) -> None:
        self.store = store
        self.mailer = mailer
        self.sender = sender
        self.clock = clock
        self.lease = lease
        # Mails this instance has claimed and is attempting: id -> the claim's attempts (handed
        # back by `release_claims` at a graceful stop).
        self._held: dict[int, int] = {}

    async def send(self, *, to: str, subject: str, text: str) -> bool:
        """Store the mail, then try to send it now; False: it waits in the mail queue for a retry."""
        mail = await self.store.enqueue_mail(
            recipient=to, subject=subject, body=text,
            # Stored claimed by this instance for this first try: no timer races it.
            now=self.clock.now(), lease=self.lease)
        if after_commit(lambda: self._attempt(mail)):
            return True  # stored in the request's transaction: sent once that commits, never before
        return await self._attempt(mail)

    async def deliver_due(self, limit: int = 100) -> tuple[int, int]:
        """Retry the mails whose time has come (at most `limit`): (sent, failed again). Claimed
        one at a time: a claim held while earlier mails are sent could run out first."""
        sent = failed = 0
        for _ in range(limit):
            claimed = await self.store.claim_mail(self.clock.now(), self.lease)
            if not claimed:
                break
            if await self._attempt(claimed[0]):
                sent += 1
            else:
                failed += 1
        return sent, failed

    async def release_claims(self) -> int:
        """A graceful stop: the mails whose attempt was cut short (the timer cancelled mid-send)
        are due again now, for another instance, instead of when their lease runs out (one the
        server had taken may be sent again: at least once, as after a crash)."""
        held, self._held = self._held, {}
        if not held:
            return 0
        try:
            return await self.store.release_mail(held, self.clock.now())
        except Exception as exc:  # the database away: the leases run out instead
            log.warning("handing back %d claimed mails failed: %s", len(held), exc)
            return 0

    async def _attempt(self, mail: QueuedMail) -> bool:
        self._held[mail.id] = mail.attempts
        sent = await self._try(mail)
        self._held.pop(mail.id, None)  # recorded (cut short, it stays held: `release_claims`)
        return sent

    async def _try(self, mail: QueuedMail) -> bool:
        message = build_message(sender=self.sender, to=mail.recipient, subject=mail.subject,
                                text=mail.body, html=None)
        try:
            await self.mailer.send(message)
        except MailError as exc:
            attempts = mail.attempts  # counts this one (the claim's)
            retry_at = None
            if attempts < MAX_ATTEMPTS:
                delay = BACKOFF_SECONDS[min(attempts - 1, len(BACKOFF_SECONDS) - 1)]
                retry_at = self.clock.now() + timedelta(seconds=delay)
            await self.store.mail_failed(mail, str(exc), retry_at)
            log.warning("mail %s to %s failed (attempt %s): %s", mail.id, mail.recipient,
                        attempts, exc, extra={"mail_id": mail.id, "attempt": attempts})
            return False
        if not await self.store.mail_sent(mail, self.clock.now()):
            log.warning("mail %s was sent after its claim ran out (another instance may send it too)", mail.id,
                        extra={"mail_id": mail.id})
        return True
