"""A route with one physical owner (a local radio: one coordinator on one serial port or TCP
address) driven by exactly one gateway instance at a time, with failover.

Every instance configured for the coordinator wraps its route in `SingleOwnerRoute`. Whoever takes
the owner lock (gateway/store/owner_lock.py: a PostgreSQL advisory lock that dies with its
session) builds the real route and starts it — only then is the coordinator opened. The others are
on standby: their dispatcher leaves the premises' deliveries `queued` in the database for the
owner's (it looks again one `check_interval_s` later, no attempt counted; whatever still reaches a
standby route is answered RETRY_LATER), and they try the lock every `check_interval_s`. When the
owner dies its session ends, the lock is free, and the first standby to take it opens the
coordinator and runs its `on_owner` hooks (the dispatcher's `took_over`: the premises' waiting
items go now, and what the dead owner left in flight is asked about again under the same ids). The
outbound records the radio keeps in the database (migration 0008) make that safe: an id the dead
owner had put on the air is reported, never sent again.

An owner that can no longer show it holds the lock (its database connection broke) stops driving
the coordinator at once and goes back to standby: two instances never drive it together.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from ams_adapters.contract import (
    HanOperation,
    InboundEvent,
    MeterCapabilities,
    ProvisioningRequest,
    Route,
    RouteCapabilities,
    SubmitOutcome,
    SubmitResult,
)
from ams_adapters.inventory import HanInventory, InventoryUnavailable, han_inventory
from gateway.store.owner_lock import OwnerLock

log = logging.getLogger(__name__)


class OwnerRole(enum.StrEnum):
    OWNER = "owner"
    STANDBY = "standby"


class SingleOwnerRoute:
    """Route (ams_adapters/contract.py) around a route only one instance may drive.

    `factory` builds a fresh route each time this instance becomes the owner (a radio route cannot
    be started again once closed); the `on_owner` hooks run after it started (the dispatcher
    registers its own: the premises' items go to the new owner now)."""

    def __init__(self, factory: Callable[[], Route], lock: OwnerLock, esi_ids: Sequence[str], *,
                 check_interval_s: float = 1.0) -> None:
        self._factory = factory
        self.lock = lock
        self.esi_ids = tuple(esi_ids)
        self.check_interval_s = check_interval_s
        self.on_owner: list[Callable[[], Awaitable[None]]] = []
        self._route: Route | None = None
        self._template: Route | None = None  # built, never started: what it answers unopened
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.takeovers = 0

    @property
    def role(self) -> OwnerRole:
        return OwnerRole.OWNER if self._route is not None else OwnerRole.STANDBY

    @property
    def capabilities(self) -> RouteCapabilities:
        return (self._route or self._unopened()).capabilities

    def _unopened(self) -> Route:
        # A route's capabilities are what it was built with: nothing is opened to read them.
        if self._template is None:
            self._template = self._factory()
        return self._template

    async def start(self) -> None:
        """Own the route now if no other instance does (a failure to start it then stops this
        start, as an unowned route's would); else stand by. Either way keep watching."""
        try:
            owner = await self.lock.try_acquire()
        except Exception:  # the database did not answer in time: stand by, the watch tries again
            log.warning("radio for %s: owner lock not reachable, standing by", ", ".join(self.esi_ids),
                        exc_info=True)
            owner = False
        if owner:
            try:
                await self._become_owner()
            except BaseException:
                await self.lock.release()
                raise
        else:
            log.info("radio for %s: another instance owns it, standing by", ", ".join(self.esi_ids))
        self._watch = asyncio.get_running_loop().create_task(self._watch_loop())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._stand_down()
        await self.lock.close()

    async def _become_owner(self) -> None:
        route = self._factory()
        try:
            await route.start()
        except BaseException:
            with contextlib.suppress(Exception):  # a half-started route's tasks are not left running
                await route.close()
            raise
        self._route = route
        self._pump = asyncio.get_running_loop().create_task(self._forward(route))
        self.takeovers += 1
        log.info("radio for %s: this instance owns it now", ", ".join(self.esi_ids))
        for hook in self.on_owner:
            try:
                await hook()
            except Exception:  # the items still go at their next attempt
                log.exception("radio for %s: handing over the waiting items failed", ", ".join(self.esi_ids))

    async def _stand_down(self) -> None:
        route, self._route = self._route, None
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        if route is not None:
            with contextlib.suppress(Exception):
                await route.close()
        await self.lock.release()

    async def _forward(self, route: Route) -> None:
        async for event in route.events():
            self._events.put_nowait(event)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                if self._route is not None:
                    if not await self.lock.still_held():
                        log.error("radio for %s: lost the owner lock (database session gone): "
                                  "stopping the coordinator", ", ".join(self.esi_ids))
                        await self._stand_down()
                elif await self.lock.try_acquire():
                    try:
                        await self._become_owner()
                    except Exception:
                        log.exception("radio for %s: took over but could not start it; "
                                      "another instance may try", ", ".join(self.esi_ids))
                        await self._stand_down()
            except Exception:  # the database is unreachable: try again at the next tick
                log.warning("radio for %s: owner check failed", ", ".join(self.esi_ids), exc_info=True)

    # ------------------------------------------------------------------ the route contract
    def _standby(self, item_id: str) -> SubmitResult:
        return SubmitResult(item_id, SubmitOutcome.RETRY_LATER,
                            reason="standby: another gateway instance drives this radio",
                            retry_after_s=self.check_interval_s)

    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        route = self._route
        if route is None:
            return [self._standby(op.outbound_id) for op in batch]
        return await route.submit(batch)

    async def provision(self, request: ProvisioningRequest) -> SubmitResult:
        route = self._route
        if route is None:
            return self._standby(request.request_id)
        return await route.provision(request)

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities:
        return await (self._route or self._unopened()).meter_capabilities(esi_id)

    async def han_inventory(self, esi_id: str) -> HanInventory:
        route = self._route
        if route is None:
            raise InventoryUnavailable("standby: another gateway instance drives this radio",
                                       retry_after_s=self.check_interval_s)
        return await han_inventory(route, esi_id)

    def events(self) -> AsyncIterator[InboundEvent]:
        async def stream() -> AsyncIterator[InboundEvent]:
            while True:
                yield await self._events.get()

        return stream()
