"""The provisioning side of the pipeline: operations stored by the API (han_provisioning_ops) go
to the premise's route (`Route.provision`), retried with jittered backoff while no route reaches
the premise or the route asks to retry, until they expire; the route's `ProvisioningUpdate`
events (requested -> find_pending -> joined | failed with a reason; deleted; done) come back
through the dispatcher's inbound loop and update the device's status and history.

The link key is decrypted only here, just before it is handed to the route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ams_adapters.contract import (
    ContractError,
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    SubmitOutcome,
)
from ams_adapters.pacing import backoff_delay
from gateway.clock import Clock
from gateway.device_keys import DeviceKeyError, LinkKeyCipher
from gateway.domain.model import DeviceStatus
from gateway.errors import Conflict, FieldError
from gateway.pipeline.config import PipelineConfig
from gateway.pipeline.dispatcher import RouteSet
from gateway.store import provisioning as prov
from gateway.store.store import Store
from gateway.store.unit_of_work import Connection

log = logging.getLogger(__name__)

# Why a provisioning failed, as the API reports it (the route's own words go into `detail`).
WRONG_INSTALL_CODE = "wrong_install_code"
JOIN_WINDOW_EXPIRED = "join_window_expired"
DEVICE_LIMIT_REACHED = "device_limit_reached"


def reason_code(raw: str | None) -> str:
    """A route's failure text -> a stable reason code (head-ends word these differently)."""
    text = (raw or "").lower()
    if "link_key_mismatch" in text or "invalid_install_code" in text or "wrong install code" in text:
        return WRONG_INSTALL_CODE
    if "join_window_expired" in text or "join window expired" in text:
        return JOIN_WINDOW_EXPIRED
    if "load_control_limit" in text:
        return "load_control_limit_reached"
    if "devices" in text and ("at most" in text or "limit" in text):
        return DEVICE_LIMIT_REACHED
    if "han_not_initialized" in text or "initialization required" in text:
        return "han_not_initialized"
    if text.startswith("expired"):
        return "no_result_before_expiry"
    return "head_end_failure"


ROUTE_CANNOT_PROVISION = "route_cannot_provision"


def route_refusal(routes: RouteSet, esi_id: str, kind: ProvisioningKind) -> Conflict | None:
    """The typed refusal of an operation the premise's route does not declare
    (`RouteCapabilities.provisioning`), or None. A premise no route reaches yet is not refused:
    its operations wait for a route, as its requests do."""
    route = routes.for_premise(esi_id)
    if route is None:
        return None
    caps = route.capabilities
    if kind in caps.provisioning:
        return None
    can = ", ".join(sorted(k.value for k in caps.provisioning)) or "none"
    message = f"route {caps.name!r} of premise {esi_id} cannot {kind.value} (its provisioning operations: {can})"
    return Conflict(message, code=ROUTE_CANNOT_PROVISION, errors=[FieldError(
        "esi_id", ROUTE_CANNOT_PROVISION, f"a premise whose route can {kind.value}; route {caps.name!r} can: {can}",
        esi_id)])


def eui64_colons(eui64: str) -> str:
    """'001BC50000000001' (the API's form) -> '00:1b:c5:00:00:00:00:01' (the route contract's)."""
    return ":".join(eui64[i:i + 2] for i in range(0, 16, 2)).lower()


def _dt(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


class ProvisioningSender:
    def __init__(self, store: Store, routes: RouteSet, config: PipelineConfig, clock: Clock,
                 cipher: LinkKeyCipher | None) -> None:
        self.store = prov.ProvisioningStore(store)
        self.routes = routes
        self.config = config
        self.clock = clock
        self.cipher = cipher
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Several instances (PostgreSQL): the operations this instance has claimed (being sent)
        # or whose route follows them (submitted), id -> the attempt its claim counted. Their
        # lease (`next_attempt_at`) is renewed while this instance lives and handed back when it
        # stops; another instance resends a submitted one only once its lease has run out.
        self._shared = not store.single_writer
        self._mine: dict[int, int] = {}
        self._next_renewal = 0.0
        self._next_resume = 0.0

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.config.provisioning_lease_seconds)

    async def start(self) -> None:
        requeued = await self.store.requeue_submitted(self.clock.now(), lapsed_only=self._shared)
        if requeued:
            log.info("%d provisioning operations submitted by a stopped run are sent again", requeued)
        self._next_renewal = time.monotonic() + self.config.provisioning_lease_seconds / 3
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._shared and self._mine:
            # Handed back at once (SIGTERM, an upgrade): another instance takes them now instead
            # of after the lease. A send cut short here is repeated under the same request id.
            with contextlib.suppress(Exception):  # the database away: the leases run out instead
                handed = await self.store.hand_back(self._mine, self.clock.now())
                log.info("%d provisioning operations handed back to the other instances", handed)
            self._mine.clear()

    def poke(self) -> None:
        self.wake.set()

    def require_route_can(self, esi_id: str, kind: ProvisioningKind) -> None:
        """Refuse, before anything is stored, an operation the premise's route cannot do."""
        refusal = route_refusal(self.routes, esi_id, kind)
        if refusal is not None:
            raise refusal

    async def _loop(self) -> None:
        while True:
            try:
                worked = await self.run_once()
            except Exception:  # a failed pass is logged and retried; the operations stay stored
                log.exception("provisioning pass failed")
                worked = 0
            if not worked:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.config.poll_interval_seconds)

    async def run_once(self, limit: int = 100) -> int:
        now = self.clock.now()
        expired = await self.store.expired(now, limit)
        for op in expired:
            await self.store.fail(op.id, now, "not_sent_before_expiry",
                                  f"no route took it before {op.expires_at.isoformat()}: {op.reason or 'no attempt'}")
        overdue = await self.store.overdue(now, limit)
        for op in overdue:
            # The route took it and then said nothing more: not left pending for ever.
            if op.kind == ProvisioningKind.PROVISION_DEVICE.value:
                await self.store.fail(op.id, now, JOIN_WINDOW_EXPIRED,
                                      f"no join reported by the head-end before the join window ended "
                                      f"({op.expires_at.isoformat()})")
            else:
                await self.store.fail(op.id, now, "no_result_before_expiry",
                                      f"the head-end reported no result before {op.expires_at.isoformat()}")
        resumed = 0
        if self._shared and time.monotonic() >= self._next_renewal:
            # Every third of a lease this instance's leases move on.
            self._next_renewal = time.monotonic() + self.config.provisioning_lease_seconds / 3
            if self._mine:
                kept = await self.store.renew_following(self._mine, now + self._lease)
                self._mine = {op_id: n for op_id, n in self._mine.items() if op_id in kept}
        if self._shared and time.monotonic() >= self._next_resume:
            # Submitted operations whose following instance stopped (its lease ran out, or it
            # handed them back) are sent again by this one: looked for at least once a second
            # (one indexed UPDATE that usually matches nothing).
            self._next_resume = time.monotonic() + min(1.0, self.config.provisioning_lease_seconds / 3)
            resumed = await self.store.requeue_submitted(now, lapsed_only=True)
            if resumed:
                log.info("%d provisioning operations of a stopped instance are sent again", resumed)
        due = await self.store.claim_due(now, now + self._lease, limit)
        if self._shared:
            self._mine.update((op.id, op.attempts) for op in due)
        await asyncio.gather(*(self._send(op, now) for op in due))
        return len(expired) + len(overdue) + len(due) + resumed

    async def _send(self, op: Any, now: datetime) -> None:
        # Retried later (by any instance) or ended: no longer this one's. (Cut short by a stop it
        # stays this one's, and `close` hands it back.)
        if not await self._attempt(op, now):
            self._mine.pop(op.id, None)

    async def _attempt(self, op: Any, now: datetime) -> bool:
        """One claimed attempt; True once the route took it (it follows it now)."""
        route = self.routes.for_premise(op.esi_id)
        if route is None:
            await self._retry(op, now, "no route reaches this premise")
            return False
        refusal = route_refusal(self.routes, op.esi_id, ProvisioningKind(op.kind))
        if refusal is not None:
            # Accepted under another configuration (or before routes declared capabilities): it
            # fails now instead of waiting for its expiry on a route that can never do it.
            await self.store.fail(op.id, now, ROUTE_CANNOT_PROVISION, refusal.detail)
            return False
        try:
            request = self._request(op)
        except (ContractError, DeviceKeyError) as exc:
            await self.store.fail(op.id, now, "not_sendable", str(exc))
            return False
        try:
            result = await route.provision(request)
        except Exception as exc:  # the route is down: retried later
            log.warning("route %s failed provisioning operation %d: %s", route.capabilities.name, op.id, exc)
            await self._retry(op, now, f"route error: {exc}")
            return False
        if result.outcome is SubmitOutcome.ACCEPTED:
            await self.store.submitted(op.id, op.attempts, now)
            return True
        if result.outcome is SubmitOutcome.REJECTED:
            await self.store.fail(op.id, now, reason_code(result.reason), result.reason or "rejected by the route")
        else:
            await self._retry(op, now, result.reason or "route asked to retry later", result.retry_after_s)
        return False

    def _request(self, op: Any) -> ProvisioningRequest:
        link_key = None
        if op.kind == prov.PROVISION_DEVICE:
            if self.cipher is None:
                raise DeviceKeyError("device_key_secret", "", "required to decrypt the stored link key")
            if op.link_key_encrypted is None:
                raise ContractError("link_key", None, "stored with the device when it was provisioned")
            link_key = self.cipher.decrypt(op.link_key_encrypted)
        return ProvisioningRequest(
            request_id=prov.request_id(op.id), esi_id=op.esi_id, kind=ProvisioningKind(op.kind),
            eui64=eui64_colons(op.eui64) if op.eui64 else None, link_key=link_key, join_window_s=op.join_window_s)

    async def _retry(self, op: Any, now: datetime, reason: str, at_least: float | None = None) -> None:
        # At least half a step, jittered: the retries of one outage do not arrive together.
        # op.attempts counts this attempt (the claim's).
        delay = backoff_delay(op.attempts - 1, self.config.retry_base_seconds, self.config.retry_max_seconds,
                              floor=0.5)
        await self.store.retry(op.id, op.attempts, now, max(delay, at_least or 0.0), reason)

    # ------------------------------------------------------------------ inbound (dispatcher's loop)
    async def on_update(self, conn: Connection, ev: ProvisioningUpdate) -> None:
        """A route's update of an operation, in the inbound loop's transaction."""
        op_id = prov.operation_of(ev.request_id)
        if op_id is None:
            return  # not one of ours (e.g. `hangw provision` run against the same head-end)
        at = _dt(ev.at)
        op = await prov.operation_to_update(conn, op_id, at)
        if op is None:
            return  # unknown, or a late duplicate of a finished operation
        if ev.state in (ProvisioningState.REQUESTED, ProvisioningState.FIND_PENDING):
            await self._progress(conn, op, ev.state, at, ev.reason)
        elif ev.state is ProvisioningState.FAILED:
            await prov.finish(conn, op, state=prov.FAILED, at=at, code=reason_code(ev.reason), detail=ev.reason)
        else:  # JOINED, DELETED, DONE
            await prov.finish(conn, op, state=prov.DONE, at=at, code=None, detail=None)

    async def _progress(self, conn: Connection, op: Any, state: ProvisioningState, at: datetime,
                        detail: str | None) -> None:
        if op.kind != prov.PROVISION_DEVICE or op.eui64 is None:
            await prov.add_event(conn, esi_id=op.esi_id, eui64=op.eui64, state=f"{op.kind}_{state.value}", at=at,
                                 operation_id=op.id, detail=detail)
            return
        if await prov.latest_operation_for_device(conn, op.esi_id, op.eui64) != op.id:
            return  # superseded by a newer operation on the device
        if state is ProvisioningState.FIND_PENDING:
            await prov.set_device(conn, op.esi_id, op.eui64, status=DeviceStatus.FIND_PENDING, at=at, code=None,
                                  detail=detail, op_id=op.id)
        else:  # the head-end took the request; the meter opens the join window
            await prov.set_device(conn, op.esi_id, op.eui64, status=DeviceStatus.PROVISION_REQUESTED, at=at,
                                  code=None, detail=detail, op_id=op.id, event_state="requested")

