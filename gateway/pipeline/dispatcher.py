"""The delivery queue's dispatcher: due deliveries -> routes, fairly between parties, with retries
(jittered exponential backoff, and the route's own retry-after), expiry (never sent late), agreement
checks at send time; and the inbound side: route events -> delivery and device states, decoded with
`zigbee_se` and matched by message id / issuer event id.

Each pass hands every route all of its due items in one `Route.submit`: batching and pacing the
route's peer is the route's job, done once there (a head-end adapter batches by its profile's
`batch_size` and paces by its `rate_limit_per_s`, ams_adapters/adapter.py), because only the route
sees everything its peer gets (provisioning too) and the numbers are the peer's. What a route cannot
take soon it answers RETRY_LATER with `retry_after_s`, and the item waits here, in the database.

Idempotency: a delivery's id is the route's `outbound_id`, so a gateway killed after the route
accepted an item but before the state was stored submits it again after restart and the route
answers with its first result: nothing reaches a home twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ams_adapters.contract import (
    CAPABLE_DEVICES,
    DeliveredToMeter,
    DeliveryFailed,
    DeviceResponse,
    HanOperation,
    InboundEvent,
    OperationKind,
    ProvisioningUpdate,
    Route,
    SubmitOutcome,
    Target,
    TargetKind,
)
from ams_adapters.pacing import backoff_delay
from gateway.clock import Clock
from gateway.domain.model import AgreementState
from gateway.pipeline import delivery_queue, inbound, price_acks
from gateway.pipeline.config import PipelineConfig
from gateway.pipeline.device_writes import NO_ANSWER
from gateway.pipeline.service import RequestService
from gateway.pipeline.single_owner import OwnerRole, SingleOwnerRoute
from gateway.store import deliveries, exclusive, han_requests
from gateway.store import device_writes as stored_writes
from gateway.store.deliveries import (
    CANCELLED,
    EXPIRED,
    FAILED,
    QUEUED,
    SUBMITTED,
    UNKNOWN,
    DueDelivery,
)
from gateway.store.store import Store
from gateway.store.unit_of_work import Connection
from zigbee_se import SEVersion

log = logging.getLogger(__name__)

OPERATION_KIND = {
    "display_message": OperationKind.TEXT, "publish_price": OperationKind.PRICE,
    "publish_block_period": OperationKind.PRICE,
    "load_control_event": OperationKind.LOAD_CONTROL, "cancel_message": OperationKind.CANCEL_TEXT,
    "cancel_load_control_event": OperationKind.CANCEL_LOAD_CONTROL,
    "write_attributes": OperationKind.SET_ENROLLMENT_GROUP,  # the only write the gateway sends
}
# Re-exported: where device answers are read (inbound.py).
ORIGINAL_COMMANDS = inbound.ORIGINAL_COMMANDS

# The withdrawal sweep: how far back each sweep looks again (a termination committed while the
# previous sweep ran), how long an ended agreement stays watched, how many deliveries per sweep.
SWEEP_OVERLAP = timedelta(seconds=60)
WITHDRAW_GRACE_SECONDS = 60.0
WITHDRAW_BATCH = 500
# A route's new owner asks about at most this many items an earlier owner left in flight.
IN_FLIGHT_LIMIT = 10_000


class RouteSet:
    """Which route reaches which premise: an exact ESI ID first (a local radio serving that
    premise's HAN), then an ESI ID prefix (a TDSP's head-end), else the default. A prefix mapped
    to None has no route: its items wait (retried with backoff) until they expire."""

    def __init__(self, default: Route | None = None, by_prefix: dict[str, Route | None] | None = None,
                 by_esi: dict[str, Route] | None = None) -> None:
        self.default = default
        self.by_prefix = by_prefix or {}
        self.by_esi = by_esi or {}

    def for_premise(self, esi_id: str) -> Route | None:
        exact = self.by_esi.get(esi_id)
        if exact is not None:
            return exact
        for prefix, route in self.by_prefix.items():
            if esi_id.startswith(prefix):
                return route
        return self.default

    def all(self) -> list[Route]:
        found: dict[int, Route] = {}
        for route in [self.default, *self.by_prefix.values(), *self.by_esi.values()]:
            if route is not None:
                found[id(route)] = route
        return list(found.values())


@functools.cache
def _se_version(text: str) -> SEVersion:
    return SEVersion.parse(text)


def _dt(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


@functools.lru_cache(maxsize=1024)
def _device(eui64: str) -> Target:
    """'001BC50000000001' (the API's form) -> the contract's one-device target (zigpy's form)."""
    return Target(TargetKind.DEVICE, ":".join(eui64[i:i + 2] for i in range(0, 16, 2)).lower())


class Dispatcher:
    def __init__(self, store: Store, routes: RouteSet, config: PipelineConfig, clock: Clock) -> None:
        self.store = store
        self.routes = routes
        self.config = config
        self.clock = clock
        self.requests = RequestService(store, config)
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # SQLite has one writer: batches finishing together would otherwise wait for each other in
        # its busy handler (which sleeps in steps of up to 100 ms); they take turns here instead.
        self._writes: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if store.single_writer else contextlib.nullcontext())
        self.handed = 0
        self._stopping = False
        self._next_sweep = 0.0
        self._swept_at: datetime | None = None  # the clock at the previous withdrawal sweep
        self._ended: dict[int, float] = {}  # ended agreements watched -> until (monotonic)
        self._commands: dict[int, dict[str, Any]] = {}
        # Rows of fan-out pages this instance expanded already claimed (PostgreSQL), sent with
        # the next due rows (`_due`): never read back and claimed a second time.
        self._page_rows: list[DueDelivery] = []
        # Several instances: the rows the current pass claimed and the end of their lease, until
        # the pass has recorded them (a graceful stop hands back what it did not get to), and the
        # fan-out page rows the current pass took from `_page_rows`.
        self._claimed: tuple[list[int], datetime] | None = None
        self._pass_pages: list[int] = []
        # Provisioning updates from the routes (gateway/pipeline/provisioning.py sets this).
        self.on_provisioning: Callable[[Any, ProvisioningUpdate], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        for route in self.routes.all():
            if isinstance(route, SingleOwnerRoute):  # its owner may change: hand it its premises' items
                route.on_owner.append(functools.partial(self.took_over, route))
            # A route that can leave its peer's notices unacknowledged until their events are
            # stored (a head-end adapter) is told how many are: a kill in between loses none.
            hold = getattr(route, "acknowledge_when_stored", None)
            stored: Callable[[int], None] | None = hold() if callable(hold) else None
            await route.start()
            self._tasks.append(asyncio.create_task(self._inbound_loop(route, stored)))
        self._tasks.append(asyncio.create_task(self._outbound_loop()))

    async def close(self) -> None:
        # The outbound loop stops between passes (cancelling it inside a transaction could leave
        # a connection checked out); the inbound loops only wait on their routes.
        self._stopping = True
        self.wake.set()
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[-1]), 10)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._claimed is not None:
            # The pass did not finish in time (a slow route): its claimed rows not yet recorded
            # are handed back to the other instances now rather than when the lease runs out. A
            # batch the route may have taken is sent again under the same outbound ids (the
            # route's idempotency, as after a crash).
            ids, lease_until = self._claimed
            self._claimed = None
            try:
                handed = await deliveries.release_claimed(self.store.engine, ids, lease_until, self.clock.now())
                log.info("%d claimed deliveries handed back to the other instances", handed)
            except Exception as exc:  # the database away: the lease runs out instead
                log.warning("handing back %d claimed deliveries failed: %s", len(ids), exc)
        # Fan-out page rows this instance claimed and never handed to a route (expanded for the
        # next pass, or taken by the pass cut short) are due again now for the other instances,
        # rather than when their lease ends.
        unsent = self._pass_pages + [r.id for r in self._page_rows]
        self._pass_pages, self._page_rows = [], []
        if unsent:
            try:
                await deliveries.defer(self.store.engine, unsent, self.clock.now())
            except Exception:  # the database is away: the lease frees them anyway
                log.warning("%d claimed fan-out rows left to their lease", len(unsent), exc_info=True)
        for route in self.routes.all():
            await route.close()

    def poke(self) -> None:
        self.wake.set()

    async def _outbound_loop(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except Exception:  # a failed pass is logged and retried; nothing is lost
                log.exception("dispatcher pass failed")
                worked = 0
            if not worked and not self._stopping:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.config.poll_interval_seconds)
                # Woken by a new request: let the requests arriving with it join the same pass.
                await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ one pass
    async def run_once(self) -> int:
        now = self.clock.now()
        worked = 0
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + 1.0
            # Several instances on one PostgreSQL: one sweeps at a time (the sweeps' writes are
            # conditional anyway, so two at once would repeat reads, not transitions). An
            # instance that does not get the lock keeps its previous sweep time, so its next
            # withdrawal sweep looks again at everything that ended since: an agreement whose
            # end only a killed instance had seen is withdrawn by the next one that sweeps.
            async with exclusive.one_at_a_time(self.store.engine, exclusive.DISPATCHER_SWEEPS) as mine:
                if mine:
                    worked += await self._withdraw_ended_agreements(now)
                    worked += await self._end_unanswered_writes(now)
                    worked += await self._end_unacknowledged(now)
                    worked += await self._end_unconfirmed(now)
        # The next fan-out page is expanded (SQL in the database's thread) while the rows already
        # due are read, handed to their routes and recorded (mostly Python in this one).
        expanding = asyncio.create_task(self._expand_fanouts(now))
        try:
            worked += await self._expire(now)
            due = await self._due(now)
            if due:
                worked += await self._dispatch(due, now)
            self._claimed, self._pass_pages = None, []
        finally:
            expanded, claimed = await expanding
            worked += expanded
            # Sent by the next pass, whichever of the two finished first in this one.
            self._page_rows.extend(claimed)
        return worked

    async def _withdraw_ended_agreements(self, now: datetime) -> int:
        """Texts and load-control events already sent under an agreement that has ended (by the
        customer, the third party or the system) are withdrawn: an SE cancel goes to each premise.
        (Queued work of ended agreements is cancelled in `_due`, before it is sent.)

        Incremental: each sweep reads only the agreements that ended since the previous one
        (`updated_at` moved or `ends_at` passed, both indexed), then looks up their deliveries
        through their premises. The first sweep after a start looks at every ended agreement once
        (what a crash may have left half withdrawn)."""
        mono = time.monotonic()
        since = None if self._swept_at is None else self._swept_at - SWEEP_OVERLAP
        for agreement in await self.store.agreements_ended(now=now, since=since):
            ended_at = agreement.updated_at if agreement.state != AgreementState.ACTIVE.value else agreement.ends_at
            recent = ended_at is not None and ended_at > now - SWEEP_OVERLAP
            # Watched for a while after it ended: a batch in flight when the agreement ended
            # may still turn `submitted` after the first look.
            until = mono + WITHDRAW_GRACE_SECONDS if recent else mono
            self._ended[agreement.id] = max(self._ended.get(agreement.id, 0.0), until)
        self._swept_at = now
        if not self._ended:
            return 0
        rows, probed = await deliveries.withdrawable(self.store.engine, list(self._ended), now, WITHDRAW_BATCH)
        busy = {r.agreement_id for r in rows}
        for agreement_id, until in list(self._ended.items()):
            if agreement_id in busy:
                self._ended[agreement_id] = max(until, mono + 1.0)  # more next sweep
            elif until <= mono and agreement_id in probed:  # looked at, nothing left: forgotten
                del self._ended[agreement_id]
        by_request: dict[int, list[Any]] = {}
        for r in rows:
            by_request.setdefault(r.request_id, []).append(r)
        for request_id, items in by_request.items():
            await self.requests.withdraw(request_id, items, now)
        return len(rows)

    async def _expand_fanouts(self, now: datetime) -> tuple[int, list[DueDelivery]]:
        """One page of each fan-out still expanding; returns the work done and the rows claimed.
        PostgreSQL: a price or text page's rows are inserted claimed by this instance (the lease
        of `read_due`'s claims) and sent with the next pass's due rows, so the instance that
        expands a page sends it and the rows are not claimed a second time (fan-out pages are
        spread across instances page by page)."""
        total = 0
        claimed_rows: list[DueDelivery] = []
        claim_for = None if self.store.single_writer else timedelta(seconds=self.config.claim_lease_seconds)
        for row in await han_requests.expanding_fanouts(self.store.engine, 20):
            # One page per request per pass: fan-outs take turns with each other and with the
            # dispatch of single-premise requests.
            async with self._writes:
                page = await self.requests.expand_fanout_page(row, now, claim_for=claim_for)
            # None: not this instance's page (another one is expanding it): no reason to hurry back.
            if page is not None:
                added, claimed = page
                claimed_rows.extend(claimed)
                total += added or 1
        return total, claimed_rows

    async def _expire(self, now: datetime) -> int:
        rows = await deliveries.read_expired(self.store.engine, now, self.config.batch_size)
        if rows:  # the write lock only when there is something to expire (still queued: only_from)
            async with self._writes:
                await deliveries.move(self.store.engine, rows, EXPIRED, now,
                                      reason="end time passed before it could be sent", only_from=[QUEUED])
        return len(rows)

    async def _end_unanswered_writes(self, now: datetime) -> int:
        """Device writes whose device never answered end `no_answer` at their end time: nothing
        waits for an answer forever (a partial index finds them; fan-out rows are never read)."""
        async with self.store.engine.connect() as conn:
            rows = await stored_writes.unanswered(conn, now, self.config.batch_size)
        if rows:
            async with self._writes:
                await deliveries.move(self.store.engine, rows, NO_ANSWER, now,
                                      reason="the device did not answer the write in time",
                                      only_from=stored_writes.AWAITING_ANSWER)
        return len(rows)

    async def _end_unacknowledged(self, now: datetime) -> int:
        """Prices and block periods whose devices did not all acknowledge within
        `price_ack_minutes` of their delivery are decided (price_acks.py): nothing waits for an
        acknowledgement forever (a partial index finds them)."""
        async with self._writes:
            return await price_acks.end_overdue(self.store, now, self.config.batch_size,
                                                self.config.price_ack_minutes)

    async def _end_unconfirmed(self, now: datetime) -> int:
        """Deliveries still `submitted` `confirm_within_seconds` after the route took them end
        `unknown` (or `expired` once their end time passed): no delivery report came, from this
        instance's routes or any other's. A late report still moves them to `delivered`. Safe with
        several instances sweeping at once: each row moves once (`only_from`, RETURNING), and only
        the instance that moved it records its transition and webhook event.

        No head-end status query is asked first: none of the protocols' adapters has one for a
        HAN operation yet (docs/pipeline.md)."""
        rows = await deliveries.read_unconfirmed(self.store.engine, now, self.config.batch_size)
        if not rows:
            return 0
        ended = [r for r in rows if deliveries.expires_unix(r.expires_at) <= now.timestamp()]
        open_ = [r for r in rows if deliveries.expires_unix(r.expires_at) > now.timestamp()]
        bound = f"{self.config.confirm_within_seconds:g} s"
        async with self._writes:
            if ended:
                await deliveries.move(self.store.engine, ended, EXPIRED, now, only_from=[SUBMITTED],
                                      reason=f"no delivery report from the route within {bound}, and its end "
                                             "time passed")
            if open_:
                await deliveries.move(self.store.engine, open_, UNKNOWN, now, only_from=[SUBMITTED],
                                      reason=f"no delivery report from the route within {bound} of submission")
        return len(rows)

    async def _due(self, now: datetime) -> list[DueDelivery]:
        """Due items, shared fairly between parties (`deliveries.read_due`); those whose agreement
        is no longer in force are cancelled here, before they are sent."""
        # PostgreSQL: claimed with a lease, other instances may be reading the same queue.
        lease = None if self.store.single_writer else timedelta(seconds=self.config.claim_lease_seconds)
        # The fan-out pages expanded since the previous pass were claimed as they were inserted.
        claimed, self._page_rows = self._page_rows, []
        self._pass_pages = [r.id for r in claimed]
        rows = await deliveries.read_due(self.store.engine, now, self.config.batch_size, lease=lease)
        if lease is not None and rows:
            self._claimed = ([r.id for r in rows], now + lease)  # until the pass has recorded them
        rows = claimed + rows
        ok: list[DueDelivery] = []
        ended: list[DueDelivery] = []
        shared_ids: set[int] = set()
        for r in rows:
            (ok if r.in_force else ended).append(r)
            if r.fields is None:
                shared_ids.add(r.request_id)
        self._commands = {rid: json.loads(cmd) for rid, cmd in (
            await han_requests.shared_commands(self.store.engine, shared_ids)).items()}
        if ended:
            async with self._writes:
                await deliveries.move(self.store.engine, ended, CANCELLED, now,
                                      reason="agreement no longer in force", only_from=[QUEUED])
        return ok

    async def _dispatch(self, rows: Sequence[DueDelivery], now: datetime) -> int:
        by_route: dict[int, tuple[Route, list[DueDelivery]]] = {}
        no_route = []
        for r in rows:
            route = self.routes.for_premise(r.esi_id)
            if route is None:
                no_route.append(r)
            else:
                by_route.setdefault(id(route), (route, []))[1].append(r)
        if no_route:  # no route configured: the items wait (retried), they are not lost
            await self._retry(no_route, now, "no route reaches this premise")
        for key, (route, items) in list(by_route.items()):
            if isinstance(route, SingleOwnerRoute) and route.role is OwnerRole.STANDBY:
                # Another instance drives this route and sends these: they wait one takeover
                # interval, no attempt counted (a retry's backoff would delay the owner's send).
                del by_route[key]
                async with self._writes:
                    await deliveries.defer(self.store.engine, [r.id for r in items],
                                           now + timedelta(seconds=route.check_interval_s))
        # One call per route: the route batches and paces what it sends (module docstring).
        await asyncio.gather(*(self._submit(route, items, now) for route, items in by_route.values()))
        return len(rows)

    async def _submit(self, route: Route, rows: list[DueDelivery], now: datetime) -> None:
        ops = self._operations(rows)
        try:
            results = await route.submit(ops)
        except Exception as exc:  # the route is down: every item is retried later
            log.warning("route %s failed a batch of %d: %s", route.capabilities.name, len(rows), exc)
            await self._retry(rows, now, f"route error: {exc}")
            return
        accepted: list[tuple[DueDelivery, str | None]] = []
        rejected: list[tuple[DueDelivery, str]] = []
        retry: list[DueDelivery] = []
        retry_after: dict[int, float] = {}
        for row, result in zip(rows, results, strict=True):
            if result.outcome is SubmitOutcome.ACCEPTED:
                accepted.append((row, result.reference))
            elif result.outcome is SubmitOutcome.REJECTED:
                rejected.append((row, result.reason or "rejected by the route"))
            else:
                retry.append(row)
                if result.retry_after_s is not None:
                    retry_after[row.id] = result.retry_after_s
        async with self._writes:
            # Set-based: state, transitions and frame log of the whole batch in a few statements.
            await deliveries.record_batch(self.store.engine, accepted, rejected, now, now + timedelta(
                seconds=self.config.confirm_within_seconds))
        self.handed += len(accepted)
        if retry:
            await self._retry(retry, now, "route asked to retry later", retry_after)

    def _operations(self, rows: Sequence[DueDelivery],
                    commands: dict[int, dict[str, Any]] | None = None) -> list[HanOperation]:
        """The route's operations for due rows: fields and SE version, no frame (the routes that
        send frames encode them, once per fields mapping and SE version: ams_adapters/se_frames.py).
        A fan-out's rows share their request's fields mapping, decoded once per pass."""
        commands = self._commands if commands is None else commands
        ops = []
        for r in rows:
            op_fields = commands[r.request_id]["fields"] if r.fields is None else json.loads(r.fields)
            ops.append(HanOperation(
                outbound_id=delivery_queue.outbound_id(r.id), esi_id=r.esi_id,
                target=CAPABLE_DEVICES if r.target_eui64 is None else _device(r.target_eui64),
                # A device write's answer is matched by its ZCL sequence number: the low byte of its SE id.
                tsn=None if r.target_eui64 is None or r.se_id is None else r.se_id & 0xFF,
                kind=OPERATION_KIND[r.command], cluster_id=r.cluster_id, command=r.command, fields=op_fields,
                se_version=_se_version(r.se_version), expires_at=deliveries.expires_unix(r.expires_raw)))
        return ops

    async def _retry(self, rows: Sequence[DueDelivery], now: datetime, reason: str,
                     retry_after: dict[int, float] | None = None) -> None:
        delays = []
        for r in rows:
            # At least half a step, jittered: retries of one outage do not stampede.
            delay = backoff_delay(r.attempts, self.config.retry_base_seconds, self.config.retry_max_seconds,
                                  floor=0.5)
            if retry_after and r.id in retry_after:
                delay = max(delay, retry_after[r.id])  # the route's own back-pressure hint
            delays.append((r.id, delay))
        async with self._writes:
            await deliveries.reschedule(self.store.engine, delays, now, reason)

    async def took_over(self, route: SingleOwnerRoute) -> None:
        """This instance became the owner of a route only one instance drives (a local radio):
        its premises' queued items are due now (the backoff the standby answers built up is
        dropped), and the items an earlier owner handed it and left without a stored outcome
        (`submitted`: it died first) are handed to it again under their own outbound ids. A route
        that records what it sent (the radio's `radio_outbound`) answers those from its record —
        sends what never left, reports what did or may have — so its events end them; nothing
        reaches a device twice. A refusal (e.g. expired by now) leaves the item as it is."""
        now = self.clock.now()
        await deliveries.make_due(self.store.engine, route.esi_ids, now)
        rows = await deliveries.read_in_flight(self.store.engine, route.esi_ids, IN_FLIGHT_LIMIT)
        if rows:
            commands = {rid: json.loads(cmd) for rid, cmd in (await han_requests.shared_commands(
                self.store.engine, {r.request_id for r in rows if r.fields is None})).items()}
            results = await route.submit(self._operations(rows, commands))
            asked = sum(r.outcome is SubmitOutcome.ACCEPTED for r in results)
            log.info("took over a route: %d items in flight asked about again (%d answered)", len(rows), asked)
        self.wake.set()

    # ------------------------------------------------------------------ inbound
    async def _inbound_loop(self, route: Route, stored: Callable[[int], None] | None = None) -> None:
        """Events are stored in batches: whatever arrived while the previous batch was being
        written goes into the next transaction; `stored` is told how many, in order, once
        committed (a batch that failed is counted too: it is logged, and must not hold back
        the acknowledgement of every later notice)."""
        pending: asyncio.Queue[InboundEvent] = asyncio.Queue()

        async def read() -> None:
            async for event in route.events():
                pending.put_nowait(event)

        reader = asyncio.create_task(read())
        try:
            while True:
                batch = [await pending.get()]
                while not pending.empty() and len(batch) < 1000:
                    batch.append(pending.get_nowait())
                try:
                    await self.handle_events(batch)
                except Exception:
                    log.exception("%d inbound events could not be stored", len(batch))
                if stored is not None:
                    stored(len(batch))
        finally:
            reader.cancel()

    async def handle_events(self, events: Sequence[InboundEvent]) -> None:
        async with self.store.transaction() as conn:
            # Consecutive events of one type are applied in bulk (inbound.py); order between runs holds.
            delivered: list[DeliveredToMeter] = []
            answers: list[DeviceResponse] = []
            for ev in [*events, None]:
                if isinstance(ev, DeliveredToMeter):
                    if answers:
                        await inbound.device_answers(conn, answers)
                        answers = []
                    delivered.append(ev)
                    continue
                if delivered:
                    ack_window = timedelta(minutes=self.config.price_ack_minutes)
                    for cancel_row, at in await inbound.mark_delivered(conn, delivered, ack_window):
                        await self._mark_original_cancelled(conn, cancel_row, at)
                    delivered = []
                if isinstance(ev, DeviceResponse):
                    answers.append(ev)
                    continue
                if answers:
                    await inbound.device_answers(conn, answers)
                    answers = []
                if isinstance(ev, DeliveryFailed):
                    delivery_id = delivery_queue.delivery_of(ev.outbound_id)
                    if delivery_id is None:
                        continue
                    row = await deliveries.find(conn, delivery_id)
                    if row is None:
                        continue
                    await deliveries.set_state(conn, [row], EXPIRED if ev.expired else FAILED, _dt(ev.at),
                                               reason=ev.reason, only_from=[QUEUED, SUBMITTED, UNKNOWN])
                elif isinstance(ev, ProvisioningUpdate) and self.on_provisioning is not None:
                    await self.on_provisioning(conn, ev)

    async def _mark_original_cancelled(self, conn: Connection, cancel_row: Any, at: datetime) -> None:
        original = await deliveries.originals(conn, cancel_row.esi_id, cancel_row.se_id, ORIGINAL_COMMANDS)
        await deliveries.set_state(conn, original, CANCELLED, at, reason="SE cancel delivered",
                                   only_from=deliveries.SENT_STATES)
