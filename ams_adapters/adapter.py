"""``HeadEndAdapter``: the route contract over one head-end transport, with the shared
robustness layer (resilience.py) between the two.

A transport only moves requests and notifications (``Transport``); everything that makes a route
dependable lives here, once, for all TDSPs: validation against the meter's capabilities,
idempotency, rate limit, batching, bounded in-flight, timeouts, retries with jittered backoff, the
circuit breaker, and the definite end of every accepted item whatever the callbacks do.

Batching and pacing a head-end happen here and nowhere else (the gateway's dispatcher hands a route
all of a pass's due items for it in one ``submit``): the adapter is the one place that sees every
request its head-end gets — HAN operations from the dispatcher, provisioning from the provisioning
service and ``hangw provision``, anything a tool or test sends — and the profile's numbers are the
head-end's. So the head-end never gets more than ``batch_size`` items in one send nor more than
``burst + rate_limit_per_s · t`` items in any ``t`` seconds, with ``burst = max(batch_size,
rate_limit_per_s / 10)`` (a tenth of a second's worth, and always one whole batch: a batch goes
out in one send), whoever calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from ams_adapters.contract import (
    ContractError,
    DeliveredToMeter,
    DeliveryFailed,
    DeviceResponse,
    HanOperation,
    InboundEvent,
    MeterCapabilities,
    MeterReachability,
    OperationKind,
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    RouteCapabilities,
    SubmitOutcome,
    SubmitResult,
)
from ams_adapters.inventory import HanInventory
from ams_adapters.inventory_query import InventoryQueries
from ams_adapters.pacing import Backoff, TokenBucket
from ams_adapters.profiles import TdspProfile
from ams_adapters.resilience import CircuitBreaker, InFlight, Tracked, Tracker
from ams_adapters.se_frames import operation_frame
from ams_adapters.tracking import ItemLookup, KnownItem
from ams_adapters.usage import MeterRead, UsageRead
from ams_adapters.usage_reads import READ_KEY, HeadEndReads
from ams_adapters.wire.common import Ack, AckStatus, HeadEndRequest, HeadEndRequestKind, NoteKind, Notification
from zigbee_se import DecodeError, EncodeError, decode_frame

log = logging.getLogger(__name__)
NotesSink = Callable[[list[Notification]], Awaitable[None] | None]


def close_unawaited(stored: Awaitable[None], task: asyncio.Task[None]) -> None:
    """A done callback for a transport's task that waits on a notes sink's `stored`: a task
    cancelled before it ran (the transport closed at once) never awaited `stored`, a coroutine,
    which Python then reports as never awaited. Closing it says that on purpose: not stored
    here means not acknowledged, and the head-end sends the notices again."""
    if task.cancelled() and inspect.iscoroutine(stored):
        stored.close()
"""What a transport hands its notices to. When it returns an awaitable, the transport acknowledges
the notices to the head-end (MultiSpeak: the callback's 200; binary: CONFIRM) only once it is done:
the events they became are stored by the gateway. Until then the head-end still has them to resend."""
MAX_RATE_WAIT_S = 2.0
"""Wait this long at most for rate-limit tokens; what would wait longer is answered RETRY_LATER with
the time the tokens will be there (the adapter never buffers without bound). Long enough for a
dispatcher pass: 500 due items (the default pass) at 300/s (the slowest profile) take 1.6 s."""
PROVISIONING_GRACE_S = 600.0
"""Provisioning outcomes other than joins (HAN init, delete, clear) must come within this."""


SEEN_ANSWERS = 200_000
STORE_WAIT_S = 10.0
"""A transport waits this long for its notices to be stored before it leaves them unacknowledged
(the head-end resends them)."""
LOOKUP_BATCH = 500
"""Notices resolved through the gateway (`ItemLookup.known`) in one call at most."""
LOOKUP_ATTEMPTS = 5
"""A lookup that fails (the database briefly away) is tried this often, with backoff, before its
notices are given up (the gateway's bound on `submitted` then ends their items)."""
PROVISIONING_KEY = "prov:"
INVENTORY_KEY = "inv:"


class BoundedSet:
    """Insertion-ordered set that forgets its oldest members beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[object, None] = OrderedDict()

    def add(self, item: object) -> None:
        self._items[item] = None
        if len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items


class Transport(Protocol):
    """What a head-end transport does; nothing more (no retries, no state about items)."""

    async def start(self, on_notes: NotesSink) -> None: ...

    async def close(self) -> None: ...

    async def send(self, requests: Sequence[HeadEndRequest]) -> list[Ack]:
        """One Ack per request, in order. Transport failures (connection refused, timeout,
        dropped connection) come back as AckStatus.ERROR with a reason starting 'transport:';
        this never raises."""
        ...


def transaction_id(tdsp: str, key: str) -> str:
    # Deterministic: a retry after a lost answer reuses it, so the head-end recognizes the
    # request and never delivers it twice.
    return f"{tdsp}:{key}"


_PROVISIONING_STATE = {s.value: s for s in ProvisioningState}


class HeadEndAdapter:
    """One TDSP's route. ``clock`` is unix time (injectable for tests of expiry)."""

    def __init__(self, profile: TdspProfile, transport: Transport, *,
                 meter_overrides: dict[str, MeterCapabilities] | None = None,
                 clock: Callable[[], float] = time.time, items: ItemLookup | None = None) -> None:
        self.profile = profile
        self.transport = transport
        self._meter_overrides = dict(meter_overrides or {})
        self._clock = clock
        self.breaker = CircuitBreaker(profile.breaker_failures, profile.breaker_reset_s)
        self.bucket = TokenBucket(profile.rate_limit_per_s, burst=pacing_burst(profile))
        self.in_flight = InFlight(profile.max_in_flight)
        self.backoff = Backoff(base_s=0.05, cap_s=min(1.0, profile.request_timeout_s))
        self.tracker = Tracker()
        # Where notices for transactions this process does not hold are resolved (tracking.py):
        # submitted before a restart, or by another gateway instance. None: such notices are dropped.
        self.items = items
        self._unresolved: list[Notification] = []
        self._resolver: asyncio.Task[None] | None = None
        # Acknowledging notices only once stored (`acknowledge_when_stored`): events emitted and
        # stored so far, notices handed to the resolver and resolved so far.
        self._hold_acks = False
        self._emitted = 0
        self._stored = 0
        self._to_resolve = 0
        self._resolved = 0
        self._progress: asyncio.Event | None = None
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # answers already passed on (duplicate callbacks are dropped); bounded, oldest forgotten first
        self._seen_responses: BoundedSet = BoundedSet(SEEN_ANSWERS)
        self._reachable: dict[str, bool] = {}
        self._started = False
        self.stats = {"sent": 0, "retries": 0, "unknown_notifications": 0, "resolved_notifications": 0}
        self.queries = InventoryQueries(profile, self._timed_send, breaker=self.breaker, bucket=self.bucket,
                                        backoff=self.backoff, clock=clock, stats=self.stats)
        self.reads = HeadEndReads(profile, transport, self._timed_send, breaker=self.breaker, bucket=self.bucket,
                                  backoff=self.backoff, clock=clock, stats=self.stats)

    # ------------------------------------------------------------------ Route
    @property
    def capabilities(self) -> RouteCapabilities:
        return self.profile.route_capabilities()

    async def start(self) -> None:
        if not self._started:
            await self.transport.start(self._on_notes)
            self._started = True

    async def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        if self._resolver is not None:
            self._resolver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resolver
            self._resolver = None
        await self.transport.close()
        self._started = False

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities:
        return self._meter_overrides.get(esi_id, self.profile.meter)

    async def han_inventory(self, esi_id: str) -> HanInventory:
        """The meter's live HAN devices, through the head-end's status operation (inventory_query.py)."""
        return await self.queries.ask(esi_id)

    async def read_usage(self, esi_id: str, start: int, end: int) -> list[UsageRead]:
        """The meter's 15-minute interval reads starting in [start, end), through the head-end's
        protocol (usage_reads.py; the optional `ams_adapters.usage.UsageRoute` capability)."""
        return await self.reads.read_usage(esi_id, start, end)

    async def read_meter(self, esi_id: str) -> MeterRead:
        """An on-demand register read through the head-end (`ams_adapters.usage.MeterReadRoute`)."""
        return await self.reads.read_meter(esi_id)

    async def events(self) -> AsyncIterator[InboundEvent]:
        while True:
            yield await self._events.get()

    def pending_events(self) -> int:
        return self._events.qsize()

    # ------------------------------------------------------------------ submit
    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        results: list[SubmitResult | None] = [None] * len(batch)
        todo: list[tuple[int, HeadEndRequest]] = []
        now = self._clock()
        for i, op in enumerate(batch):
            known = self.tracker.get(op.outbound_id)
            if known is not None and known.result is not None:
                results[i] = known.result  # idempotent: the first answer, never a second delivery
                continue
            if known is not None and known.terminal == "delivered":
                # its answer was lost but its delivery report came: it is accepted (and done)
                known.result = SubmitResult(op.outbound_id, SubmitOutcome.ACCEPTED, reference=known.transaction_id)
                results[i] = known.result
                continue
            reason = self._refusal(op, now)
            if reason is not None:
                if known is not None and known.terminal is None:
                    self.tracker.end(known, "expired", now)  # never accepted; the answer below ends it
                results[i] = SubmitResult(op.outbound_id, SubmitOutcome.REJECTED, reason=reason)
                continue
            todo.append((i, self._request(op)))
        size = self.profile.batch_size
        chunks = [todo[start:start + size] for start in range(0, len(todo), size)]
        # Sent concurrently, paced by the one bucket: each chunk reserves its tokens in order (before
        # its first await) and sleeps until they are there, so batches leave at the profile's rate
        # while earlier ones still wait for the head-end's answer (its latency does not slow the rate).
        sends = [self._send_chunk([r for _, r in chunk], [batch[i].outbound_id for i, _ in chunk]) for chunk in chunks]
        # One batch (the common call) is awaited in place: no task and no extra loop turns.
        answers = [await sends[0]] if len(sends) == 1 else await asyncio.gather(*sends)
        for chunk, chunk_answers in zip(chunks, answers, strict=True):
            for (i, _), res in zip(chunk, chunk_answers, strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    async def provision(self, request: ProvisioningRequest) -> SubmitResult:
        known = self.tracker.get(request.request_id)
        if known is not None and known.result is not None:
            return known.result
        if request.kind not in self.profile.provisioning:
            return SubmitResult(request.request_id, SubmitOutcome.REJECTED,
                                reason=f"kind: {request.kind.value} is not among this head-end's provisioning "
                                       f"operations ({', '.join(sorted(self.profile.provisioning)) or 'none'})")
        now = self._clock()
        window = request.join_window_s or 0
        req = HeadEndRequest(
            transaction_id=transaction_id(self.profile.tdsp, PROVISIONING_KEY + request.request_id),
            esi_id=request.esi_id,
            kind=HeadEndRequestKind(request.kind.value), expires_at=now + window + PROVISIONING_GRACE_S,
            eui64=request.eui64, link_key=request.link_key, join_window_s=request.join_window_s,
            target="device" if request.eui64 else "meter")
        (res,) = await self._send_chunk([req], [request.request_id])
        return res

    def _refusal(self, op: HanOperation, now: float) -> str | None:
        if op.expires_at <= now:
            return f"expired: expires_at {op.expires_at:.0f} passed before the head-end accepted it"
        if op.kind not in self.profile.operations:  # the gateway refuses it at acceptance already
            return (f"kind: {op.kind.value} is not carried by the {self.profile.transport} transport "
                    f"of {self.profile.name}")
        caps = self._meter_overrides.get(op.esi_id, self.profile.meter)
        # Text length is not checked here: the gateway checked it against this route's
        # max_text_bytes and frame budget before it accepted the request (ams_adapters/text_limit.py).
        if self.profile.carries_frames:
            try:
                operation_frame(op, max_frame_size=self.profile.max_frame_size)  # kept for _request
            except EncodeError as exc:
                return f"SE frame: {exc}"
        if op.kind is OperationKind.PRICE:
            tiers = int(op.fields.get("number_of_price_tiers", 0))
            if tiers > caps.price_tiers:
                return f"number_of_price_tiers: {tiers}, limit {caps.price_tiers} on {self.profile.name} meters"
        return None

    def _request(self, op: HanOperation) -> HeadEndRequest:
        return HeadEndRequest(
            transaction_id=transaction_id(self.profile.tdsp, op.outbound_id), esi_id=op.esi_id,
            kind=HeadEndRequestKind(op.kind.value), expires_at=op.expires_at, target=op.target.kind.value,
            eui64=op.target.eui64, cluster_id=op.cluster_id, command=op.command, fields=dict(op.fields),
            # The binary protocol carries the frame (encoded once per request and SE version);
            # MultiSpeak and 61968-9 carry the fields and their head-end encodes the frame.
            frame=operation_frame(op, max_frame_size=self.profile.max_frame_size) if self.profile.carries_frames
            else b"", se_version=str(op.se_version))

    async def _send_chunk(self, reqs: list[HeadEndRequest], keys: list[str]) -> list[SubmitResult]:
        out: dict[int, SubmitResult] = {}
        pending = list(range(len(reqs)))
        # back-pressure first: refuse what the head-end cannot take now instead of buffering it
        if not self.breaker.allow():
            return [self._later(k, self.breaker.retry_after(), "head-end circuit open") for k in keys]
        claimed = self.in_flight.claim(len(pending))
        for j in pending[claimed:]:
            out[j] = self._later(keys[j], 0.5, f"{self.in_flight.limit} items in flight at the head-end")
        pending = pending[:claimed]
        wait = self.bucket.wait_time(len(pending)) if pending else 0.0
        if wait > MAX_RATE_WAIT_S:
            affordable = max(0, int(len(pending) - wait * self.bucket.rate + MAX_RATE_WAIT_S * self.bucket.rate))
            for j in pending[affordable:]:
                out[j] = self._later(keys[j], wait, f"rate limit {self.profile.rate_limit_per_s}/s")
            pending = pending[:affordable]
        self.in_flight.settle(claimed - len(pending))
        try:
            return await self._send_paced(reqs, keys, pending, out)
        finally:
            self.in_flight.settle(len(pending))

    async def _send_paced(self, reqs: list[HeadEndRequest], keys: list[str], pending: list[int],
                          out: dict[int, SubmitResult]) -> list[SubmitResult]:
        """Send `pending` once the bucket has their tokens, retrying transport errors."""
        if pending:
            await asyncio.sleep(self.bucket.reserve(len(pending)))
            pending = self._not_expired(reqs, keys, pending, out)
        if not pending:
            self.breaker.cancel_probe()
        for j in pending:
            # tracked before the head-end answers: a result that arrives for a request whose
            # answer was lost (timeout, dropped connection) still finds its item
            item = self.tracker.get(keys[j]) or self.tracker.add(
                Tracked(keys[j], reqs[j].esi_id, reqs[j].transaction_id, reqs[j].expires_at))
            item.extra["kind"] = reqs[j].kind
        attempt = 0
        while pending:
            acks = await self._timed_send([reqs[j] for j in pending])
            self.stats["sent"] += len(pending)
            if all(a.status is AckStatus.ERROR for a in acks):
                self.breaker.record_failure(acks[0].reason if acks else None)
            else:
                self.breaker.record_success()
            retry: list[int] = []
            for j, ack in zip(pending, acks, strict=True):
                if ack.status is AckStatus.ERROR and attempt < self.profile.retries:
                    retry.append(j)
                else:
                    out[j] = self._result(reqs[j], keys[j], ack)
            if not retry:
                break
            attempt += 1
            self.stats["retries"] += len(retry)
            if not self.breaker.allow():
                for j in retry:
                    out[j] = self._later(keys[j], self.breaker.retry_after(), "head-end circuit open")
                break
            await asyncio.sleep(self.backoff.delay(attempt))
            pending = retry
        return [out[j] for j in range(len(reqs))]

    def _not_expired(self, reqs: list[HeadEndRequest], keys: list[str], pending: list[int],
                     out: dict[int, SubmitResult]) -> list[int]:
        """`pending` without the items whose end time passed while they waited for the rate limit
        (rejected as at submit: never sent late)."""
        now = self._clock()
        kept = []
        for j in pending:
            if reqs[j].expires_at > now:
                kept.append(j)
                continue
            known = self.tracker.get(keys[j])
            if known is not None and known.terminal is None:
                self.tracker.end(known, "expired", now)
            out[j] = SubmitResult(keys[j], SubmitOutcome.REJECTED, reason=(
                f"expired: expires_at {reqs[j].expires_at:.0f} passed while waiting for the head-end's rate limit"))
        return kept

    async def _timed_send(self, reqs: list[HeadEndRequest]) -> list[Ack]:
        try:
            async with asyncio.timeout(self.profile.request_timeout_s * 1.5):
                return await self.transport.send(reqs)
        except TimeoutError:
            return [Ack(r.transaction_id, AckStatus.ERROR, "transport: timeout") for r in reqs]

    def _later(self, key: str, after: float, why: str) -> SubmitResult:
        return SubmitResult(key, SubmitOutcome.RETRY_LATER, reason=why, retry_after_s=round(max(0.05, after), 3))

    def _result(self, req: HeadEndRequest, key: str, ack: Ack) -> SubmitResult:
        if ack.status is AckStatus.BUSY:
            return self._later(key, ack.retry_after_s or 0.5, f"head-end busy: {ack.reason}")
        if ack.status is AckStatus.ERROR:
            return self._later(key, self.backoff.delay(self.profile.retries + 1) + 0.1,
                               f"head-end unavailable: {ack.reason}")
        item = self.tracker.get(key) or self.tracker.add(Tracked(key, req.esi_id, req.transaction_id, req.expires_at))
        item.extra["kind"] = req.kind
        if ack.status is AckStatus.REJECTED:
            item.result = SubmitResult(key, SubmitOutcome.REJECTED, reason=f"head-end: {ack.reason}")
            self.tracker.end(item, "failed", self._clock())
            return item.result
        item.result = SubmitResult(key, SubmitOutcome.ACCEPTED, reference=req.transaction_id)
        if item.terminal is None and not item.in_flight:
            item.in_flight = True
            self.in_flight.acquire()
            delay = max(0.0, req.expires_at + self.profile.expiry_grace_s - self._clock())
            self._timers[key] = asyncio.get_running_loop().call_later(delay, self._expire, key)
            if req.kind.provisioning:
                self._seen_responses.add((req.transaction_id, req.eui64, None, ProvisioningState.REQUESTED.value))
                self._emit(ProvisioningUpdate(key, req.esi_id, ProvisioningState.REQUESTED, self._clock(), req.eui64))
        return item.result

    # ------------------------------------------------------------------ ending items
    def _finish(self, item: Tracked, terminal: str) -> bool:
        if not self.tracker.end(item, terminal, self._clock()):
            return False
        if item.in_flight:
            item.in_flight = False
            self.in_flight.release()
        timer = self._timers.pop(item.key, None)
        if timer is not None:
            timer.cancel()
        return True

    def _expire(self, key: str) -> None:
        self._timers.pop(key, None)
        item = self.tracker.get(key)
        if item is None or item.terminal is not None:
            return
        self._finish(item, "expired")
        reason = "expired: no result from the head-end by the expiration time"
        if _provisioning(item):
            self._emit(ProvisioningUpdate(key, item.esi_id, ProvisioningState.FAILED, self._clock(), reason=reason))
        else:
            self._emit(DeliveryFailed(key, item.esi_id, self._clock(), reason, expired=True))

    def _emit(self, event: InboundEvent) -> None:
        self._emitted += 1
        self._events.put_nowait(event)

    # ------------------------------------------------------------------ acknowledging notices once stored
    def acknowledge_when_stored(self) -> Callable[[int], None]:
        """The events' one consumer (the gateway's dispatcher) stores what it reads and calls the
        returned function with how many events it has stored, in order. From then on a notice is
        acknowledged to the head-end only after the events it became are stored, so a process
        killed in between leaves it with the head-end, which resends it (to whichever instance is
        alive). Without a call (tests, CLI) notices are acknowledged when taken."""
        self._hold_acks = True
        return self._events_stored

    def _events_stored(self, count: int) -> None:
        self._stored += count
        self._progressed()

    def _progressed(self) -> None:
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    async def _progress_made(self) -> None:
        if self._progress is None:
            self._progress = asyncio.Event()
        await self._progress.wait()

    async def _settled(self, resolve_upto: int) -> None:
        """Done once the notices handed to the resolver so far are resolved and every event emitted
        by then is stored."""
        while self._resolved < resolve_upto:
            await self._progress_made()
        target = self._emitted
        while self._stored < target:
            await self._progress_made()

    # ------------------------------------------------------------------ notifications
    def _on_notes(self, notes: list[Notification]) -> Awaitable[None] | None:
        for n in notes:
            try:
                self._on_note(n)
            except (ContractError, ValueError) as exc:  # a head-end's bad notification never kills the route
                log.warning("notification %s for %s refused: %s", n.kind, n.transaction_id, exc)
        return self._settled(self._to_resolve) if self._hold_acks else None

    def _on_note(self, n: Notification) -> None:
        if self.queries.take(n):
            return  # the answer to an inventory query, not an item's end
        if self.reads.take(n):
            return  # the answer to an on-demand read, not an item's end
        if n.kind is NoteKind.REACHABILITY:
            reachable = n.state == "reachable"
            if self._reachable.get(n.esi_id) != reachable:
                self._reachable[n.esi_id] = reachable
                self._emit(MeterReachability(n.esi_id, reachable, n.at))
            return
        item = self.tracker.by_transaction(n.transaction_id)
        if item is None:
            if self.items is not None and self._key_of(n.transaction_id) is not None:
                self._resolve_later(n)
            else:
                self.stats["unknown_notifications"] += 1
            return
        self._apply(item, n)

    def _apply(self, item: Tracked, n: Notification) -> None:
        if n.kind is NoteKind.PROVISIONING:
            state = _PROVISIONING_STATE.get(n.state or "")
            if state is None:
                raise ValueError(f"state={n.state!r}: one of {sorted(_PROVISIONING_STATE)}")
            if state in (ProvisioningState.REQUESTED, ProvisioningState.FIND_PENDING):
                key = (n.transaction_id, n.eui64, None, state.value)
                if item.terminal is None and key not in self._seen_responses:
                    self._seen_responses.add(key)
                    self._emit(ProvisioningUpdate(item.key, n.esi_id, state, n.at, n.eui64, n.reason))
            elif self._finish(item, "failed" if state is ProvisioningState.FAILED else "delivered"):
                self._emit(ProvisioningUpdate(item.key, n.esi_id, state, n.at, n.eui64, n.reason))
            return
        if n.kind is NoteKind.DELIVERED:
            if self._finish(item, "delivered"):
                self._emit(DeliveredToMeter(item.key, n.esi_id, n.at, item.transaction_id))
            return
        if n.kind is NoteKind.FAILED:
            if _provisioning(item):
                if self._finish(item, "failed"):
                    self._emit(ProvisioningUpdate(item.key, n.esi_id, ProvisioningState.FAILED, n.at, n.eui64,
                                                  n.reason))
            elif self._finish(item, "failed"):
                self._emit(DeliveryFailed(item.key, n.esi_id, n.at, n.reason or "head-end reported failure"))
            return
        if n.kind is NoteKind.DEVICE_RESPONSE:
            answer = (n.transaction_id, n.eui64, n.frame, None)
            if answer in self._seen_responses:
                self.tracker.duplicates_ignored += 1
                return
            self._seen_responses.add(answer)
            if item.terminal is None and self._finish(item, "delivered"):
                # out of order: a device answered, so the meter had the command
                self._emit(DeliveredToMeter(item.key, n.esi_id, n.at, item.transaction_id))
            self._emit(self._device_response(item, n))

    # ------------------------------------------------------------------ notices for items not in memory
    def _key_of(self, txid: str) -> tuple[str, bool] | None:
        """(item key, provisioning?) of one of this adapter's transaction ids (`transaction_id`);
        None for another TDSP's, or an inventory query's (a query is not an item)."""
        head = self.profile.tdsp + ":"
        if not txid.startswith(head):
            return None
        key = txid[len(head):]
        if not key or key.startswith((INVENTORY_KEY, READ_KEY)):
            return None
        if key.startswith(PROVISIONING_KEY):
            return key[len(PROVISIONING_KEY):], True
        return key, False

    def _resolve_later(self, n: Notification) -> None:
        # Kept in arrival order with the other misses: a transaction's DELIVERED is applied before
        # the device answer that followed it.
        self._unresolved.append(n)
        self._to_resolve += 1
        if self._resolver is None or self._resolver.done():
            self._resolver = asyncio.get_running_loop().create_task(self._resolve())

    async def _resolve(self) -> None:
        """Ask the gateway about the transactions of notices the tracker missed, a batch at a time,
        then apply each notice as if the item had been submitted here."""
        assert self.items is not None
        while self._unresolved:
            notes = self._unresolved[:LOOKUP_BATCH]
            del self._unresolved[:LOOKUP_BATCH]
            wanted: dict[str, tuple[str, bool]] = {}
            for n in notes:
                parsed = self._key_of(n.transaction_id)
                if parsed is not None and self.tracker.by_transaction(n.transaction_id) is None:
                    wanted[n.transaction_id] = parsed
            found = await self._look_up(sorted({key for key, _ in wanted.values()}))
            for n in notes:
                item = self.tracker.by_transaction(n.transaction_id)
                if item is None:
                    key, provisioning = wanted[n.transaction_id]
                    known = found.get(key)
                    if known is None or known.esi_id != n.esi_id:  # not ours, or about another meter
                        self.stats["unknown_notifications"] += 1
                        continue
                    item = self.tracker.add(Tracked(key, known.esi_id, n.transaction_id, known.expires_at))
                    item.extra["provisioning"] = provisioning
                self.stats["resolved_notifications"] += 1
                try:
                    self._apply(item, n)
                except (ContractError, ValueError) as exc:
                    log.warning("notification %s for %s refused: %s", n.kind, n.transaction_id, exc)
            self._resolved += len(notes)
            self._progressed()

    async def _look_up(self, keys: list[str]) -> dict[str, KnownItem]:
        assert self.items is not None
        if not keys:
            return {}
        for attempt in range(LOOKUP_ATTEMPTS):
            try:
                return dict(await self.items.known(keys))
            except Exception as exc:  # the gateway's database away for a moment: try again
                log.warning("looking up %d head-end transactions failed (%s); attempt %d of %d",
                            len(keys), exc, attempt + 1, LOOKUP_ATTEMPTS)
                await asyncio.sleep(self.backoff.delay(attempt + 1))
        return {}

    def _device_response(self, item: Tracked, n: Notification) -> DeviceResponse:
        cluster = n.cluster_id or 0
        command, fields = "unknown", {}
        if n.frame is not None:
            try:
                decoded = decode_frame(cluster, n.frame)
                command, fields = decoded.command, dict(decoded.fields)
            except DecodeError as exc:
                command, fields = "undecodable", {"reason": exc.reason}
        return DeviceResponse(esi_id=n.esi_id, eui64=n.eui64 or "", cluster_id=cluster, at=n.at, command=command,
                              fields=fields, frame=n.frame, outbound_id=item.key)

    # ------------------------------------------------------------------ introspection
    async def drain(self, timeout: float) -> list[InboundEvent]:
        """Collect events for ``timeout`` seconds (tests, CLI)."""
        out: list[InboundEvent] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    out.append(await self._events.get())
        return out


def pacing_burst(profile: TdspProfile) -> float:
    """The items a head-end may get at once: a tenth of a second's worth at its rate, and at least
    one whole batch (a batch goes out in one send)."""
    return max(float(profile.batch_size), profile.rate_limit_per_s / 10)


def _provisioning(item: Tracked) -> bool:
    """A provisioning request (by its request kind, or by its key when the item was resolved
    through the gateway rather than submitted here)."""
    kind = item.extra.get("kind")
    if isinstance(kind, HeadEndRequestKind):
        return kind.provisioning
    return bool(item.extra.get("provisioning"))


def provisioning_kind(kind: ProvisioningKind) -> HeadEndRequestKind:
    return HeadEndRequestKind(kind.value)
