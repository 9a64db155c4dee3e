"""Webhooks: events POSTed signed in the Standard Webhooks format, retried with backoff, stored
before they are sent (never lost across restarts), and delivered in order per subject (the object
the event is about: `request:12`, `agreement:5`, `device:<esi_id>:<eui64>`; see
gateway/store/events.py): an event waits while an earlier one of the same subject to the same
webhook is not delivered yet.

Dead letters: an event that failed `webhook_max_attempts` times, or is older than
`webhook_max_age_seconds` when it fails again, is dead-lettered (`dead_at`). It is no longer sent
and no longer holds back the later events of its request (a receiver that rejects one event
forever must not stop every later event of that request forever): those go on, in order among
themselves. Dead letters are listed by `GET /v1/webhooks/{id}/dead-letters` and sent again by
`POST …/dead-letters/{event_id}/redeliver` (or `…/dead-letters/redeliver` for all), which puts
them back in the queue as new attempts; a redelivered event then arrives after events that were
sent while it was dead — receivers order by the event's `at`.

Several instances on one database: every attempt is made by the one instance that claimed the
event for `webhook_lease_seconds` (gateway/store/row_claims.py); an instance that dies mid-attempt
leaves its event due again when the lease is over, and another instance sends it — the same
`webhook-id`, signed the same way, so receivers drop the repeat (at least once). While a
request's first undelivered event is claimed, its later events wait behind it on every instance.

Isolation: each webhook has its own sender task (at most `webhook_concurrency` at once, and
`webhook_concurrency_per_party` of one party's: many hanging receivers of one party cannot take
every sender), started by a scan that finds webhooks with an event ready to go (the first
undelivered event of a request, due). An attempt is bounded as a whole by
`webhook_timeout_seconds` (connecting, sending, a receiver that answers byte by byte) and any
failure of it — a URL that does not parse, a host that does not resolve or resolves to a refused
address (webhook_targets.py), a reset, a timeout, a bad stored secret — is that event's failed
attempt (one log line), never the sender's end: a broken or hanging receiver delays its own
events only.

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
import secrets
from datetime import datetime, timedelta
from typing import Any

import httpcore
import httpx

from ams_adapters.pacing import backoff_delay
from gateway.clock import Clock
from gateway.pipeline.config import PipelineConfig
from gateway.pipeline.webhook_targets import GuardedBackend, parse_url
from gateway.store import events
from gateway.store import webhooks as webhook_store
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


async def seal_webhook_secrets(store: Store) -> int:
    """Seal the signing secrets stored in clear before sealing existed (run at start, with a key)."""
    sealer = store.secret_sealer
    if sealer is None:
        return 0
    return await webhook_store.seal_secrets(store.engine, sealer)


class WebhookSender:
    def __init__(self, store: Store, config: PipelineConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._workers: dict[int, asyncio.Task[None]] = {}  # by webhook id
        self._parties: dict[int, int] = {}  # webhook id -> party id, of the running senders
        # Events this instance has claimed and not finished: id -> the claim's attempts (handed
        # back by `close`).
        self._held: dict[int, int] = {}

    def _secret(self, stored: str) -> str:
        """The signing secret of a webhook row (sealed at rest, gateway/device_keys.py)."""
        sealer = self.store.secret_sealer
        return sealer.open_text(stored) if sealer is not None else stored

    async def start(self) -> None:
        timeout = self.config.webhook_timeout_seconds
        # httpcore rather than httpx.AsyncClient: its network backend is where the address check
        # sits (httpx does not expose it); URLs are still parsed by httpx (webhook_targets.py).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=4 * self.config.webhook_concurrency,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(self.config.webhook_allowed_networks, timeout))
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._held:
            # A graceful stop (SIGTERM): the events this instance claimed and did not finish are
            # due again now, for another instance, instead of when their lease runs out. An
            # attempt cut short here may have reached its receiver: sent again under the same
            # webhook-id (at least once, as after a crash).
            try:
                handed = await webhook_store.release_claims(self.store.engine, self._held, self.clock.now())
                log.info("%d claimed webhook events handed back to the other instances", handed)
            except Exception as exc:  # the database away: their leases run out instead
                log.warning("handing back %d webhook events failed: %s", len(self._held), exc)
            self._held.clear()
        if self._pool is not None:
            await self._pool.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # e.g. the database is away for a moment: one line, scan again
                log.warning("webhook scan failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.config.poll_interval_seconds)

    async def run_once(self) -> int:
        """Start a sender for each webhook with an event ready and no sender yet, within the limits
        (all webhooks; one party's webhooks); returns how many were started."""
        started = 0
        for hook_id, party_id in await webhook_store.ready_webhooks(self.store.engine, self.clock.now()):
            if len(self._workers) >= self.config.webhook_concurrency:
                break
            busy = sum(1 for p in self._parties.values() if p == party_id)
            if hook_id in self._workers or busy >= self.config.webhook_concurrency_per_party:
                continue
            task = asyncio.create_task(self._worker(hook_id), name=f"webhook-{hook_id}")
            self._workers[hook_id] = task
            self._parties[hook_id] = party_id
            task.add_done_callback(self._finished)
            started += 1
        return started

    def _finished(self, task: asyncio.Task[None]) -> None:
        for hook_id in [h for h, t in self._workers.items() if t is task]:
            del self._workers[hook_id]
            self._parties.pop(hook_id, None)

    def _lease_until(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.config.webhook_lease_seconds)

    async def _worker(self, webhook_id: int) -> None:
        """Send this webhook's ready events until none is left (a failed one waits for its retry).
        Each head is claimed first (gateway/store/row_claims.py): other instances' senders of the
        same webhook take other requests' heads, never this one."""
        # Heads claimed per query: the query groups the webhook's pending events, so not one per
        # event; few enough that each can still be sent within its lease, which is moved on
        # before each head's turn (a run of its request's events may come before it).
        per_claim = max(1, int(self.config.webhook_lease_seconds // self.config.webhook_timeout_seconds) - 1)
        try:
            while True:
                heads = await webhook_store.claim_heads(self.store.engine, webhook_id, self.clock.now(),
                                                        self._lease_until(), limit=per_claim)
                if not heads:
                    return
                self._held.update((h.id, h.attempts) for h in heads)
                for n, head in enumerate(heads):
                    if n and not await webhook_store.extend_claim(self.store.engine, head, self._lease_until()):
                        self._held.pop(head.id, None)
                        continue  # its lease ran out during the runs before it: another instance's now
                    await self._send_run(head)
        except Exception as exc:  # the database, not the receiver: the next scan starts it again
            log.warning("webhook %d sender stopped: %s: %s", webhook_id, type(exc).__name__, exc)

    async def _send_run(self, head: Any, run: int = 200) -> None:
        """The claimed first event of a request, then the request's next events in order (one query
        for up to `run` of them: a fan-out's thousands of events are not one query each), each
        claimed before its attempt — in the transaction that records the attempt before it — until
        one fails, waits for its retry or is another instance's."""
        rows = iter(await webhook_store.following_events(self.store.engine, head, run - 1))
        row = head
        while True:
            values = await self._attempt(row)
            upcoming = next(rows, None) if "delivered_at" in values else None
            now = self.clock.now()
            if upcoming is not None and upcoming.attempts and upcoming.next_attempt_at is not None \
                    and upcoming.next_attempt_at > now:
                upcoming = None  # waits for its retry
            recorded, claimed = await webhook_store.record_attempt_and_claim(
                self.store.engine, row, values, upcoming, now=now, lease_until=self._lease_until(),
                on_dead=events.record_dead_letter)
            self._held.pop(row.id, None)
            self._log(row, values, recorded)
            if claimed is None:
                return
            self._held[claimed.id] = claimed.attempts
            row = claimed

    async def _attempt(self, row: Any) -> dict[str, Any]:
        """One attempt at one claimed event (its `attempts` counts this one): what to record —
        delivered, retry later, or dead letter."""
        now = self.clock.now()
        try:
            error = await self._post(row, now)
        except TimeoutError:
            error = f"no answer within {self.config.webhook_timeout_seconds:g} s"
        except Exception as exc:  # whatever it is, it is this event's failed attempt
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        done = self.clock.now()
        if error is None:
            return {"delivered_at": done, "next_attempt_at": None}
        error = " ".join(error.split())[:300]  # one line, the column's size
        if self._dead(row, done):
            # Set aside: later events of the request are no longer held back by it.
            return {"last_error": error, "next_attempt_at": None, "dead_at": done}
        delay = backoff_delay(row.attempts - 1, 1.0, self.config.webhook_retry_max_seconds, floor=0.5)
        return {"last_error": error, "next_attempt_at": done + timedelta(seconds=delay)}

    def _log(self, row: Any, values: dict[str, Any], recorded: bool) -> None:
        """One line per failed attempt (never a traceback: the reason is in `last_error`)."""
        if not recorded:
            # This attempt outlived its claim (webhook_lease_seconds): another instance took the
            # event meanwhile and its attempt decides; the receiver may see the event id twice.
            log.warning("webhook %d event %d: attempt %d ended after its claim ran out; not recorded",
                        row.webhook_id, row.id, row.attempts)
        elif "dead_at" in values:
            log.warning("webhook %d event %d dead-lettered after %d attempts: %s", row.webhook_id, row.id,
                        row.attempts, values["last_error"])
        elif "last_error" in values:
            delay = (values["next_attempt_at"] - self.clock.now()).total_seconds()
            log.warning("webhook %d event %d attempt %d failed (retry in %.0f s): %s", row.webhook_id, row.id,
                        row.attempts, max(delay, 0.0), values["last_error"])

    def _dead(self, row: Any, now: datetime) -> bool:
        """This failure was the event's last chance: attempts or age used up."""
        too_old = (now - row.created_at).total_seconds() >= self.config.webhook_max_age_seconds
        return bool(row.attempts >= self.config.webhook_max_attempts or too_old)

    async def _post(self, row: Any, now: datetime) -> str | None:
        """POST one event; None when the receiver answered 2xx, else why not. `row`: a
        webhook_outbox row joined with its webhook (url, secret). May raise anything."""
        assert self._pool is not None
        url = parse_url(row.url)  # rows stored before URLs were checked may not parse
        # The event's id (the same on every channel and in GET /v1/events); rows queued before the
        # event log existed keep the id they had (their outbox row's).
        msg_id = f"evt_{row.event_id}" if row.event_id is not None else f"msg_{row.id}"
        ts = int(now.timestamp())
        body: bytes = row.body.encode()
        headers = [(b"host", url.netloc), (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"webhook-id", msg_id.encode()),
                   (b"webhook-timestamp", str(ts).encode()),
                   (b"webhook-signature", sign(self._secret(row.secret), msg_id, ts, row.body).encode())]
        timeout = self.config.webhook_timeout_seconds
        target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
        status: int | None = None
        try:
            # One deadline for the whole attempt: httpcore's timeouts are per step, and a receiver
            # answering a byte at a time would never hit them.
            async with asyncio.timeout(timeout), self._pool.stream(
                    "POST", target, headers=headers, content=body, extensions={
                        "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}) as r:
                status = r.status
                # The answer's body is not needed; reading a short one keeps the connection reusable.
                read = 0
                async for chunk in r.aiter_stream():
                    read += len(chunk)
                    if read > 65536:
                        break
        except TimeoutError:
            if status is None:
                raise
            # The status came in time; only the (unneeded) body was slow.
        assert status is not None
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"
