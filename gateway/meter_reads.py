"""On-demand meter reads (issue 16; ENERGY_DATA.md §1.4): a party with an Energy Data agreement
in force asks for a current register read of one premise's meter; the read is asynchronous.

`MeterReadService.submit` stores the read pending — counted against the premise's TDSP's daily cap
(`[usage] on_demand_reads_per_tdsp_per_day`, Texas-local days, counted in the database so every
instance spends from one count; past it `ReadQuotaExceeded`, nothing stored). `MeterReadWorker` (on
the instances that run background work) claims due reads with a lease, reads the meter through the
premise's route (`ams_adapters.usage.read_meter`) and records the outcome with its event
(`meter_read.completed` / `meter_read.failed`) in one transaction. As at the portal, a read is
irreversible: it cannot be cancelled, and a failed one is not retried (the party asks again).

Failure reasons: `unreachable` (no route reaches the premise, or the route could not read the
meter), `not_supported` (the premise's route has no on-demand read), `expired` (not taken within
`[usage] on_demand_read_expiry_seconds`: no worker ran, or the instances that took it died).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ams_adapters.usage import UsageNotSupported, UsageUnavailable, read_meter
from gateway.agreements import USAGE_TIME_ZONE
from gateway.clock import Clock
from gateway.config import UsageConfig
from gateway.store.events import NewEvent
from gateway.store.meter_reads import COMPLETED, FAILED, QuotaExhausted, StoredMeterRead
from gateway.store.store import Store
from gateway.usage import RouteLookup

log = logging.getLogger(__name__)

COMPLETED_EVENT = "meter_read.completed"
FAILED_EVENT = "meter_read.failed"
POLL_SECONDS = 1.0  # the worker's look at the queue when nobody pokes it (another instance's reads)
CLAIM_BATCH = 10


class ReadQuotaExceeded(Exception):
    """The TDSP's on-demand reads of the (Texas-local) day are used up."""

    def __init__(self, tdsp: str, limit: int, resets_at: datetime) -> None:
        self.tdsp, self.limit, self.resets_at = tdsp, limit, resets_at
        super().__init__(f"the on-demand reads of TDSP {tdsp} are used up for today: {limit} a day; "
                         f"the count resets at {resets_at.isoformat()} (midnight, America/Chicago)")


def texas_day(now: datetime) -> tuple[str, datetime]:
    """The Texas-local day of `now` (YYYY-MM-DD) and the moment it ends (next local midnight)."""
    local = now.astimezone(USAGE_TIME_ZONE)
    nxt = local.date() + timedelta(days=1)
    return local.date().isoformat(), datetime(nxt.year, nxt.month, nxt.day, tzinfo=USAGE_TIME_ZONE)


def subject_of_meter_read(read_id: int) -> str:
    return f"meter_read:{read_id}"


def read_body(read: StoredMeterRead) -> dict[str, Any]:
    """What the API answers and the events carry about a read."""
    body: dict[str, Any] = {"meter_read_id": read.id, "esi_id": read.esi_id, "status": read.state,
                            "agreement_id": read.agreement_id,
                            "requested_at": read.requested_at.astimezone(UTC).isoformat()}
    if read.state == COMPLETED and read.read_at is not None and read.delivered_wh is not None:
        body["read"] = {"read_at": read.read_at.astimezone(UTC).isoformat(), "delivered_wh": read.delivered_wh,
                        "received_wh": read.received_wh, "demand_w": read.demand_w}
    if read.state == FAILED:
        body["reason"] = read.reason
        body["detail"] = read.detail
    if read.finished_at is not None:
        body["finished_at"] = read.finished_at.astimezone(UTC).isoformat()
    return body


class MeterReadService:
    def __init__(self, store: Store, config: UsageConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    async def submit(self, *, party_id: int | None, agreement_id: int | None, esi_id: str,
                     tdsp: str) -> StoredMeterRead:
        now = self.clock.now()
        day, resets_at = texas_day(now)
        limit = self.config.on_demand_reads_per_tdsp_per_day
        try:
            return await self.store.submit_meter_read(
                party_id=party_id, agreement_id=agreement_id, esi_id=esi_id, tdsp=tdsp, day=day, limit=limit,
                now=now, expires_at=now + timedelta(seconds=self.config.on_demand_read_expiry_seconds))
        except QuotaExhausted:
            raise ReadQuotaExceeded(tdsp, limit, resets_at) from None


@dataclass(frozen=True)
class ReadOutcome:
    values: dict[str, Any]


class MeterReadWorker:
    """Takes the due reads (several instances: each read by one) and reads the meters."""

    def __init__(self, store: Store, routes: RouteLookup, config: UsageConfig, clock: Clock) -> None:
        self.store = store
        self.routes = routes
        self.config = config
        self.clock = clock
        self.lease = timedelta(seconds=config.on_demand_read_lease_seconds)
        self._held: dict[int, int] = {}  # claimed, not finished: id -> the claim's attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._held:  # a graceful stop: another instance takes them at once, not after the lease
            try:
                await self.store.release_meter_reads(dict(self._held), self.clock.now())
            except Exception:  # the database away: the leases run out instead
                log.exception("could not hand back %d claimed meter read(s)", len(self._held))
            self._held.clear()

    async def _loop(self) -> None:
        while True:
            try:
                while await self.run_once():
                    pass
            except Exception:  # logged; the next pass tries again
                log.exception("on-demand meter read pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim a batch of due reads and do them (concurrently: each waits on its own meter);
        how many were claimed."""
        claimed = await self.store.claim_meter_reads(self.clock.now(), self.lease, CLAIM_BATCH)
        for read in claimed:
            self._held[read.id] = read.attempts
        await asyncio.gather(*(self._attempt(read) for read in claimed))
        return len(claimed)

    async def _attempt(self, read: StoredMeterRead) -> None:
        outcome = await self._read(read)
        now = self.clock.now()
        values = {"finished_at": now, **outcome.values}
        finished = replace(read, **values)
        events = []
        if read.party_id is not None:
            kind = COMPLETED_EVENT if finished.state == COMPLETED else FAILED_EVENT
            events.append(NewEvent(read.party_id, kind, subject_of_meter_read(read.id),
                                   {**read_body(finished), "at": now.isoformat()}, now))
        if not await self.store.finish_meter_read(read, values, events):
            log.warning("meter read %d: the claim ran out and another instance took it; this result is dropped",
                        read.id)
        self._held.pop(read.id, None)

    async def _read(self, read: StoredMeterRead) -> ReadOutcome:
        if self.clock.now() >= read.expires_at:
            return _failed("expired", f"not read within {self.config.on_demand_read_expiry_seconds:g} s of the "
                                      "request")
        route = self.routes.for_premise(read.esi_id)
        if route is None:
            return _failed("unreachable", f"no route reaches premise {read.esi_id}")
        try:
            # The lease bounds the read: past it another instance may take the read over.
            got = await asyncio.wait_for(read_meter(route, read.esi_id), self.lease.total_seconds() * 0.8)
        except UsageNotSupported as exc:
            return _failed("not_supported", str(exc))
        except UsageUnavailable as exc:
            return _failed("unreachable", exc.reason)
        except TimeoutError:
            return _failed("unreachable", f"route {route.capabilities.name} did not answer in time")
        except Exception as exc:  # the route's own failure: the read failed, the worker goes on
            log.exception("route %s failed reading meter %s", route.capabilities.name, read.esi_id)
            return _failed("unreachable", f"route error: {exc!r}")
        return ReadOutcome({"state": COMPLETED, "read_at": datetime.fromtimestamp(got.read_at, UTC),
                        "delivered_wh": got.delivered_wh, "received_wh": got.received_wh,
                        "demand_w": got.demand_w})


def _failed(reason: str, detail: str) -> ReadOutcome:
    return ReadOutcome({"state": FAILED, "reason": reason, "detail": detail[:500]})
