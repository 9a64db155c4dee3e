"""The head-end adapter's usage reads (issue 16): interval data in pages, and on-demand register
reads, through whichever protocol the TDSP's head-end speaks (the transport's `read_intervals`,
and a `meter_read` request answered by a `meter_read` notification).

Interval reads are synchronous at every head-end (MultiSpeak's GetReadings…IntervalData, 61968-9's
``get MeterReadings`` with AsyncReplyFlag false, the binary READ frame): the adapter asks for at most
`profile.read_page_intervals` interval starts per call, follows the head-end's "more from here"
(MultiSpeak ``ObjectsRemaining``/``LastSent``, 61968-9 Result PARTIAL, the binary ``next_start``)
and checks every answer (`wire.reads.check_page`) before any of it is used: a malformed or
out-of-range answer is `UsageAnswerInvalid` naming the field, the value and the limit, and nothing
of the read is returned (the caller stores nothing of it).

On-demand reads are asynchronous (MultiSpeak InitiateMeterReadingsByMeterID →
ReadingChangedNotification; 61968-9 ``get MeterReadings`` with the bulk register ReadingType,
acknowledged, the data later on the ReplyAddress; the binary SUBMIT of kind ``meter_read`` → a
RESULT). Like an inventory query (inventory_query.py) a read is not an item: no outbound id, no
tracker entry; it shares the adapter's rate limit, circuit breaker and retries of transport errors.

Head-end down (refused connection, timeout, HTTP 5xx, broker away) → `UsageUnavailable` with
`retry_after_s`, so ingestion (gateway/usage.py) reports it and fills the gap at a later pass.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, MutableMapping
from typing import Protocol, runtime_checkable

from ams_adapters.inventory_query import Send
from ams_adapters.pacing import Backoff, TokenBucket
from ams_adapters.pending_answers import PendingAnswers
from ams_adapters.profiles import TdspProfile
from ams_adapters.resilience import CircuitBreaker
from ams_adapters.usage import Channel, MeterRead, Quality, UsageAnswerInvalid, UsageRead, UsageUnavailable
from ams_adapters.wire.common import (
    Ack,
    AckStatus,
    HeadEndRequest,
    HeadEndRequestKind,
    NoteKind,
    Notification,
    WireError,
)
from ams_adapters.wire.reads import INTERVAL_S, IntervalPage, ReadRefused, check_page, check_register

READ_KEY = "read:"
"""Transaction ids of on-demand reads: ``<tdsp>:read:<unique>`` (never an item's)."""
ANSWER_GRACE_S = 2.0
"""Wait this long past the read's expirationTime for the answer (it may be on its way)."""
MAX_RATE_WAIT_S = 0.25


@runtime_checkable
class IntervalTransport(Protocol):
    """A transport that can read a meter's interval data (all three head-end transports)."""

    async def read_intervals(self, esi_id: str, start: int, end: int, last_received: int | None) -> IntervalPage:
        """One call: the values starting in [start, end) (after `last_received`, the start of the
        last interval an earlier page of the same read sent, where given). Raises
        `wire.reads.ReadRefused` (the head-end refused or is unreachable) or `WireError` (a
        malformed answer)."""
        ...


class HeadEndReads:
    """The adapter's usage reads; `take` hands on-demand reads their answers."""

    def __init__(self, profile: TdspProfile, transport: object, send: Send, *, breaker: CircuitBreaker,
                 bucket: TokenBucket, backoff: Backoff, clock: Callable[[], float],
                 stats: MutableMapping[str, int]) -> None:
        self.profile = profile
        self.transport = transport
        self._send = send
        self.breaker = breaker
        self.bucket = bucket
        self.backoff = backoff
        self._clock = clock
        self.stats = stats
        self._answers = PendingAnswers(frozenset({NoteKind.METER_READ, NoteKind.FAILED}))
        self._seq = itertools.count(1)

    # ------------------------------------------------------------------ interval data
    async def read_usage(self, esi_id: str, start: int, end: int) -> list[UsageRead]:
        if not isinstance(self.transport, IntervalTransport):
            raise UsageUnavailable(f"the {self.profile.transport} transport has no interval read")
        limit = self.profile.read_page_intervals
        first = -(-start // INTERVAL_S) * INTERVAL_S  # the first 15-minute boundary at or after start
        out: list[UsageRead] = []
        chunk = first
        while chunk < end:
            stop = min(end, chunk + limit * INTERVAL_S)
            at, last_received = chunk, None
            while True:
                page = await self._page(esi_id, at, stop, limit=limit, chunk=chunk, last_received=last_received)
                out.extend(UsageRead(v.start, v.length_s, Channel(v.channel), v.value_wh, Quality(v.quality))
                           for v in page.values)
                if page.next_start is None:
                    break
                at, last_received = page.next_start, page.next_start - INTERVAL_S
            chunk = stop
        self.stats["interval_reads"] = self.stats.get("interval_reads", 0) + 1
        return out

    async def _page(self, esi_id: str, at: int, stop: int, *, limit: int, chunk: int,
                    last_received: int | None) -> IntervalPage:
        """One call to the head-end for [at, stop), checked; retries transport errors."""
        p = self.profile
        assert isinstance(self.transport, IntervalTransport)
        for attempt in range(p.retries + 1):
            await self._admit()
            try:
                page = await self.transport.read_intervals(esi_id, chunk, stop, last_received)
            except ReadRefused as refused:
                transient = not refused.permanent and not refused.busy
                if transient:
                    self.breaker.record_failure()
                if refused.busy or refused.permanent or attempt == p.retries:
                    raise UsageUnavailable(f"head-end {p.name}: {refused.reason}",
                                           retry_after_s=refused.retry_after_s) from None
                await asyncio.sleep(self.backoff.delay(attempt + 1))
                continue
            except WireError as exc:
                self.stats["invalid_read_answers"] = self.stats.get("invalid_read_answers", 0) + 1
                raise UsageAnswerInvalid(p.tdsp, exc.field, exc.value, exc.limit) from None
            self.breaker.record_success()
            try:
                check_page(page, esi_id, at, stop, limit)
            except WireError as exc:
                self.stats["invalid_read_answers"] = self.stats.get("invalid_read_answers", 0) + 1
                raise UsageAnswerInvalid(p.tdsp, exc.field, exc.value, exc.limit) from None
            return page
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    async def _admit(self) -> None:
        """Rate limit and circuit breaker, shared with the HAN operations."""
        p = self.profile
        wait = self.bucket.wait_time(1)
        if wait > MAX_RATE_WAIT_S:
            raise UsageUnavailable(f"rate limit {p.rate_limit_per_s}/s at {p.name}", retry_after_s=wait)
        if not self.breaker.allow():
            raise UsageUnavailable(f"head-end {p.name}: circuit open", retry_after_s=self.breaker.retry_after())
        await asyncio.sleep(self.bucket.reserve(1))

    # ------------------------------------------------------------------ on-demand read
    def take(self, note: Notification) -> bool:
        """True if `note` answers an on-demand read (now, or a late duplicate)."""
        return self._answers.take(note)

    async def read_meter(self, esi_id: str) -> MeterRead:
        p = self.profile
        txid = f"{p.tdsp}:{READ_KEY}{uuid.uuid4().hex[:12]}-{next(self._seq)}"
        expires_at = self._clock() + p.meter_read_timeout_s
        req = HeadEndRequest(transaction_id=txid, esi_id=esi_id, kind=HeadEndRequestKind.METER_READ,
                             expires_at=expires_at, target="meter")
        try:
            note = await self._answers.ask(txid, lambda: self._request(req),
                                           lambda: max(0.0, expires_at - self._clock()) + ANSWER_GRACE_S)
        except TimeoutError:
            raise UsageUnavailable(
                f"meter {esi_id} was not read within {p.meter_read_timeout_s:g} s (the read's expirationTime at "
                f"{p.name}; the head-end dropped it, the meter may be unreachable)",
                retry_after_s=p.meter_read_timeout_s) from None
        if note.kind is NoteKind.FAILED or note.register is None:
            raise UsageUnavailable(f"head-end {p.name}: {note.reason or 'the read failed'}")
        if note.esi_id and note.esi_id != esi_id:
            raise UsageAnswerInvalid(p.tdsp, "meterID", note.esi_id, f"the meter asked for ({esi_id})")
        try:
            check_register(note.register)
        except WireError as exc:
            raise UsageAnswerInvalid(p.tdsp, exc.field, exc.value, exc.limit) from None
        r = note.register
        self.stats["meter_reads"] = self.stats.get("meter_reads", 0) + 1
        return MeterRead(read_at=r.read_at, delivered_wh=r.delivered_wh, received_wh=r.received_wh,
                         demand_w=r.demand_w)

    async def _request(self, req: HeadEndRequest) -> None:
        """Send until the head-end acknowledges; raise `UsageUnavailable` with the reason otherwise."""
        p = self.profile
        ack = Ack(req.transaction_id, AckStatus.ERROR, "not sent")
        for attempt in range(p.retries + 1):
            await self._admit()
            (ack,) = await self._send([req])
            self.stats["sent"] = self.stats.get("sent", 0) + 1
            if ack.status is AckStatus.ERROR:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            if ack.status is AckStatus.OK:
                return
            if ack.status is AckStatus.REJECTED:
                raise UsageUnavailable(f"head-end {p.name} refused the read: {ack.reason}")
            if ack.status is AckStatus.BUSY:
                raise UsageUnavailable(f"head-end {p.name} busy: {ack.reason}", retry_after_s=ack.retry_after_s or 0.5)
            if attempt < p.retries:
                await asyncio.sleep(self.backoff.delay(attempt + 1))
        raise UsageUnavailable(f"head-end {p.name} unavailable: {ack.reason}",
                               retry_after_s=self.backoff.delay(p.retries + 1) + 0.1)
