"""The head-end adapter's HAN inventory query (issue 13): one `han_inventory` request to the
head-end, then the wait for the meter's answer.

A query is not an item: it has no outbound id, is never resubmitted by the delivery queue and
ends no delivery, so it stays out of the adapter's tracker (no in-flight slot, no expiry event).
It shares the adapter's back-pressure instead: the rate limit, the circuit breaker and the retries
of transport errors (the head-end dedups by transaction id, so a retry is the same query).
Every failure is an `InventoryUnavailable` saying why (busy, refused, no answer by the expiry).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, MutableMapping

from ams_adapters.inventory import HanInventory, InventoryUnavailable, from_registrations
from ams_adapters.pacing import Backoff, TokenBucket
from ams_adapters.pending_answers import PendingAnswers
from ams_adapters.profiles import TdspProfile
from ams_adapters.resilience import CircuitBreaker
from ams_adapters.wire.common import Ack, AckStatus, HeadEndRequest, HeadEndRequestKind, NoteKind, Notification

Send = Callable[[list[HeadEndRequest]], Awaitable[list[Ack]]]
ANSWER_GRACE_S = 2.0
"""Wait this long past the request's expiration time for the answer (it may be on its way)."""
MAX_RATE_WAIT_S = 0.25
"""As for submits: wait this long at most for a rate-limit token, else the caller is told to retry."""


class InventoryQueries:
    """The adapter's open queries by transaction id; `take` hands them their answers."""

    def __init__(self, profile: TdspProfile, send: Send, *, breaker: CircuitBreaker, bucket: TokenBucket,
                 backoff: Backoff, clock: Callable[[], float], stats: MutableMapping[str, int]) -> None:
        self.profile = profile
        self._send = send
        self.breaker = breaker
        self.bucket = bucket
        self.backoff = backoff
        self._clock = clock
        self.stats = stats
        self._answers = PendingAnswers(frozenset({NoteKind.INVENTORY, NoteKind.FAILED}))
        self._seq = itertools.count(1)

    def take(self, note: Notification) -> bool:
        """True if `note` belongs to an inventory query (answered now, or a late duplicate)."""
        return self._answers.take(note)

    async def ask(self, esi_id: str) -> HanInventory:
        p = self.profile
        # Unique per query: two technicians asking at once are two queries to the head-end.
        txid = f"{p.tdsp}:inv:{uuid.uuid4().hex[:12]}-{next(self._seq)}"
        expires_at = self._clock() + p.inventory_timeout_s
        req = HeadEndRequest(transaction_id=txid, esi_id=esi_id, kind=HeadEndRequestKind.HAN_INVENTORY,
                             expires_at=expires_at, target="meter")
        try:
            note = await self._answers.ask(txid, lambda: self._request(req),
                                           lambda: max(0.0, expires_at - self._clock()) + ANSWER_GRACE_S)
        except TimeoutError:
            raise InventoryUnavailable(
                f"meter {esi_id} did not answer within {p.inventory_timeout_s:g} s (the request's expiry at "
                f"{p.name}; the meter may be unreachable)", timed_out=True) from None
        if note.kind is NoteKind.FAILED:
            raise InventoryUnavailable(f"head-end {p.name}: {note.reason or 'failed'}")
        self.stats["inventories"] = self.stats.get("inventories", 0) + 1
        return from_registrations(esi_id, note.meter_id, note.at, note.registrations)

    async def _request(self, req: HeadEndRequest) -> None:
        """Send until the head-end acknowledges; raise with the reason otherwise."""
        p = self.profile
        for attempt in range(p.retries + 1):
            wait = self.bucket.wait_time(1)
            if wait > MAX_RATE_WAIT_S:
                raise InventoryUnavailable(f"rate limit {p.rate_limit_per_s}/s at {p.name}", retry_after_s=wait)
            if not self.breaker.allow():
                raise InventoryUnavailable(f"head-end {p.name}: circuit open", retry_after_s=self.breaker.retry_after())
            await asyncio.sleep(self.bucket.reserve(1))
            (ack,) = await self._send([req])
            self.stats["sent"] = self.stats.get("sent", 0) + 1
            if ack.status is AckStatus.ERROR:
                self.breaker.record_failure(ack.reason)
            else:
                self.breaker.record_success()
            if ack.status is AckStatus.OK:
                return
            if ack.status is AckStatus.REJECTED:
                raise InventoryUnavailable(f"head-end {p.name}: {ack.reason}", refused=True)
            if ack.status is AckStatus.BUSY:
                raise InventoryUnavailable(f"head-end {p.name} busy: {ack.reason}",
                                           retry_after_s=ack.retry_after_s or 0.5)
            if attempt < p.retries:
                await asyncio.sleep(self.backoff.delay(attempt + 1))
        raise InventoryUnavailable(f"head-end {p.name} unavailable: {ack.reason}",
                                   retry_after_s=self.backoff.delay(p.retries + 1) + 0.1)
