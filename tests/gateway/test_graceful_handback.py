"""A graceful stop hands back what an instance claimed (issue 14). Two instances (two stores on
one PostgreSQL database, each with its own engine):
- the mail queue: one claims a due mail and is stopped while the SMTP server holds its send (its
  timer cancelled, as the app's shutdown does); the mail is the other instance's at once, not when
  the lease (120 s) runs out, and it reaches the SMTP server from there. The SMTP server is real
  (aiosmtpd, tests/e2e/test_outbox_takeover.py's sink).
- the delivery queue: one instance's dispatcher claims a pass and hands it to a route whose peer
  (a loopback HTTP server that takes the request and never answers) holds it past the 10 s a stop
  waits for a pass; the stop hands the pass's rows back and the other instance claims them at once
  (lease 120 s)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiosmtpd.controller import Controller

from gateway.clock import SystemClock
from gateway.config import MailConfig
from gateway.mail import SmtpMailer
from gateway.mail_sender import MailSender
from gateway.pipeline.config import PipelineConfig
from gateway.pipeline.dispatcher import Dispatcher, RouteSet
from gateway.store import deliveries
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.simulated_route import RemoteSimulatedRoute
from tests.e2e.test_outbox_takeover import SmtpSink, _eventually
from tests.gateway.test_premise_order import _queue

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


async def test_a_stopped_dispatchers_unrecorded_pass_is_the_other_instances_at_once(migrated_pg_url: str) -> None:
    here = await open_store(migrated_pg_url)
    other = await open_store(migrated_pg_url, migrate_to=None)
    submits = asyncio.Event()
    finished = asyncio.Event()

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if b"/submit" in await reader.readline():
            submits.set()
        await finished.wait()
        writer.close()

    peer = await asyncio.start_server(never_answers, "127.0.0.1", free_port())
    port = peer.sockets[0].getsockname()[1]
    clock = SystemClock()
    dispatcher = Dispatcher(here, RouteSet(default=RemoteSimulatedRoute(f"http://127.0.0.1:{port}")),
                            PipelineConfig(claim_lease_seconds=120, poll_interval_seconds=0.05), clock)
    try:
        ids = await _queue(here, [(f"1044372000000000{n}", 1) for n in range(3)], at=clock.now())
        await dispatcher.start()
        await asyncio.wait_for(submits.wait(), 10)  # the pass is at the route, which holds it
        assert await deliveries.read_due(other.engine, clock.now(), 10, lease=timedelta(seconds=120)) == []
        await dispatcher.close()  # the graceful stop: waits 10 s for the pass, then hands it back
        stopped = clock.now()
        taken = await deliveries.read_due(other.engine, clock.now(), 10, lease=timedelta(seconds=120))
        assert sorted(r.id for r in taken) == ids  # at once, not after the lease
        assert (clock.now() - stopped).total_seconds() < 5
    finally:
        finished.set()
        peer.close()
        await other.close()
        await here.close()
