"""A graceful stop hands back what an instance claimed (issue 14), here the mail queue: two
instances (two stores on one PostgreSQL database); one claims a due mail and is stopped while the
SMTP server holds its send (its timer cancelled, as the app's shutdown does); the mail is the
other instance's at once, not when the lease (120 s) runs out, and it reaches the SMTP server from
there. The SMTP server is real (aiosmtpd, tests/e2e/test_outbox_takeover.py's sink)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiosmtpd.controller import Controller

from gateway.clock import SystemClock
from gateway.config import MailConfig
from gateway.mail import SmtpMailer
from gateway.mail_sender import MailSender
from gateway.store.store import open_store
from sandbox.ports import free_port
from tests.e2e.test_outbox_takeover import SmtpSink, _eventually
from tests.gateway.conftest import migrated_pg_url, pg_migrated_template

__all__ = ["migrated_pg_url", "pg_migrated_template"]

LEASE = timedelta(seconds=120)


async def test_a_stopped_instances_claimed_mail_is_the_other_instances_at_once(migrated_pg_url: str) -> None:
    here = await open_store(migrated_pg_url)
    other = await open_store(migrated_pg_url, migrate_to=None)
    sink = SmtpSink([])
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        clock = SystemClock()
        mailer = SmtpMailer(MailConfig(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none",
                                       smtp_timeout_seconds=5))
        stopping, staying = (MailSender(s, mailer, "gw@example.test", clock, LEASE) for s in (here, other))
        # queued as after a failed first try: due now, for whichever instance's timer claims it
        await here.enqueue_mail(recipient="pat@example.test", subject="Hello", body="hi", now=clock.now(),
                                lease=timedelta(0))
        sink.stall = True  # the SMTP server holds the first send at RCPT
        timer = asyncio.create_task(stopping.deliver_due())
        await _eventually(lambda: sink.stalled_at > 0, 10, "the stopping instance's send")
        assert await other.claim_mail(clock.now(), LEASE) == []  # claimed: the other one waits

        timer.cancel()  # the graceful stop: the timer is cancelled mid-send, then the claims handed back
        await asyncio.gather(timer, return_exceptions=True)
        assert await stopping.release_claims() == 1
        sink.stall = False
        assert await staying.deliver_due() == (1, 0)  # taken at once, well before the lease
        assert [to for _t, _p, to, _s in sink.received] == ["pat@example.test"]
        assert await stopping.release_claims() == 0  # nothing held any more
    finally:
        smtp.stop()
        await other.close()
        await here.close()
