"""HAN provisioning in the store: devices with their encrypted link key and join window, the
provisioning outbox (`han_provisioning_ops`, stored before anything is sent) and the status
history (`han_device_events`).

Operation ids reach routes as request ids `hgw-prov-<id>`: the same id after a restart, so a route
(and the head-end behind it) answers a resent operation with its first result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.limits import SLOT_HOLDERS
from gateway.domain.model import DeviceStatus
from gateway.store import events, row_claims
from gateway.store.schema import han_device_events, han_devices, han_provisioning_ops
from gateway.store.store import Store

# Operation kinds: the values of ams_adapters.contract.ProvisioningKind.
INITIALIZE_HAN = "initialize_han"
PROVISION_DEVICE = "provision_device"
DELETE_DEVICE = "delete_device"
CLEAR_DEVICES = "clear_devices"
DECOMMISSION_HAN = "decommission_han"
PREMISE_KINDS = (INITIALIZE_HAN, CLEAR_DEVICES, DECOMMISSION_HAN)

# Operation states.
QUEUED, SUBMITTED, DONE, FAILED = "queued", "submitted", "done", "failed"

# How long a premise-wide operation or a delete waits for a route before it is given up.
OPERATION_LIFETIME = timedelta(days=7)
# How long after an operation's end (a device's join window, another operation's lifetime) the
# head-end's last word may still arrive. Past it, a submitted operation with no result ends failed:
# a head-end that never answers (or answered while the gateway was down) leaves no device pending.
RESULT_GRACE = timedelta(minutes=30)
REQUEST_PREFIX = "hgw-prov-"


def request_id(operation_id: int) -> str:
    return f"{REQUEST_PREFIX}{operation_id}"


def operation_of(request: str | None) -> int | None:
    if not request or not request.startswith(REQUEST_PREFIX):
        return None
    tail = request[len(REQUEST_PREFIX):]
    return int(tail) if tail.isdigit() else None


@dataclass(frozen=True)
class DeviceEvent:
    state: str
    at: datetime
    reason: str | None
    detail: str | None
    operation_id: int | None


@dataclass(frozen=True)
class ProvisionedDevice:
    esi_id: str
    eui64: str
    device_type: str
    status: DeviceStatus
    party_id: int | None
    join_window_ends_at: datetime | None
    last_reason: str | None
    created_at: datetime
    updated_at: datetime
    history: list[DeviceEvent]


@dataclass(frozen=True)
class Operation:
    id: int
    esi_id: str
    eui64: str | None
    kind: str
    state: str
    reason: str | None
    created_at: datetime
    updated_at: datetime


def _operation(row: Any) -> Operation:
    return Operation(row.id, row.esi_id, row.eui64, row.kind, row.state, row.reason, row.created_at,
                     row.updated_at)


async def add_event(conn: AsyncConnection, *, esi_id: str, eui64: str | None, state: str, at: datetime,
                    operation_id: int | None, reason: str | None = None, detail: str | None = None,
                    party_id: int | None = None) -> None:
    """One history row, and the same event in the party's event log (in this transaction)."""
    await conn.execute(han_device_events.insert().values(
        esi_id=esi_id, eui64=eui64, state=state, reason=reason, detail=(detail or None) and detail[:300],
        at=at, operation_id=operation_id))
    if party_id is None:
        return
    # In order per device (subject device:<esi_id>:<eui64>) on every channel.
    await events.record_events(conn, [events.NewEvent(
        party_id, "device.provisioning", events.subject_of_device(esi_id, eui64),
        {"esi_id": esi_id, "eui64": eui64, "state": state, "reason": reason, "detail": detail,
         "at": at.isoformat(), "operation_id": operation_id}, at)])


class ProvisioningStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    # ------------------------------------------------------------------ requests from the API
    async def slots_in_use(self, esi_id: str) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(han_devices).where(
                han_devices.c.esi_id == esi_id,
                han_devices.c.status.in_([s.value for s in SLOT_HOLDERS])))).scalar_one())

    async def request_device(self, *, esi_id: str, eui64: str, device_type: str, party_id: int | None,
                             link_key_encrypted: str, join_window_s: int, now: datetime) -> int | None:
        """Store the device (or re-provision a failed or removed one) and its provisioning
        operation in one transaction. None when the device is on the premise already."""
        window_end = now + timedelta(seconds=join_window_s)
        values = {"device_type": device_type, "status": DeviceStatus.PROVISION_REQUESTED.value,
                  "party_id": party_id, "link_key_encrypted": link_key_encrypted,
                  "join_window_ends_at": window_end, "last_reason": None, "updated_at": now}
        async with self.engine.begin() as conn:
            status = (await conn.execute(sa.select(han_devices.c.status).where(
                han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64))).scalar_one_or_none()
            if status is None:
                await conn.execute(han_devices.insert().values(esi_id=esi_id, eui64=eui64, created_at=now, **values))
            elif status in (DeviceStatus.FAILED.value, DeviceStatus.REMOVED.value):
                await conn.execute(han_devices.update().where(
                    han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64).values(**values))
            else:
                return None
            op_id = await self._enqueue(conn, esi_id=esi_id, eui64=eui64, kind=PROVISION_DEVICE, party_id=party_id,
                                        now=now, expires_at=window_end, join_window_s=join_window_s)
            await add_event(conn, esi_id=esi_id, eui64=eui64, state=DeviceStatus.PROVISION_REQUESTED.value, at=now,
                            operation_id=op_id, party_id=party_id)
        return op_id

    async def request_delete(self, esi_id: str, eui64: str, party_id: int | None, now: datetime, *,
                             provisioned_by: int | None = None) -> int | None:
        """None when the premise has no such device (or, with `provisioned_by`, none that party
        provisioned); 0 when it is removed already."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(han_devices.c.status, han_devices.c.party_id).where(
                han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64))).first()
            if row is None or (provisioned_by is not None and row.party_id != provisioned_by):
                return None
            if row.status == DeviceStatus.REMOVED.value:
                return 0
            await conn.execute(han_devices.update().where(
                han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64).values(
                status=DeviceStatus.DELETE_REQUESTED.value, updated_at=now))
            # A provisioning not sent yet is withdrawn, not sent after (or alongside) the delete.
            await conn.execute(han_provisioning_ops.update().where(
                han_provisioning_ops.c.esi_id == esi_id, han_provisioning_ops.c.eui64 == eui64,
                han_provisioning_ops.c.kind == PROVISION_DEVICE, han_provisioning_ops.c.state == QUEUED).values(
                state=FAILED, reason="withdrawn: the device was deleted before it was sent", updated_at=now))
            op_id = await self._enqueue(conn, esi_id=esi_id, eui64=eui64, kind=DELETE_DEVICE, party_id=party_id,
                                        now=now, expires_at=now + OPERATION_LIFETIME, join_window_s=None)
            await add_event(conn, esi_id=esi_id, eui64=eui64, state=DeviceStatus.DELETE_REQUESTED.value, at=now,
                            operation_id=op_id, party_id=row.party_id)
        return op_id

    async def request_premise_operation(self, esi_id: str, kind: str, now: datetime) -> int:
        assert kind in PREMISE_KINDS, kind
        async with self.engine.begin() as conn:
            op_id = await self._enqueue(conn, esi_id=esi_id, eui64=None, kind=kind, party_id=None, now=now,
                                        expires_at=now + OPERATION_LIFETIME, join_window_s=None)
            await add_event(conn, esi_id=esi_id, eui64=None, state=f"{kind}_requested", at=now, operation_id=op_id)
        return op_id

    async def _enqueue(self, conn: AsyncConnection, *, esi_id: str, eui64: str | None, kind: str,
                       party_id: int | None, now: datetime, expires_at: datetime, join_window_s: int | None) -> int:
        op_id: int = (await conn.execute(han_provisioning_ops.insert().values(
            esi_id=esi_id, eui64=eui64, kind=kind, join_window_s=join_window_s, party_id=party_id, state=QUEUED,
            attempts=0, next_attempt_at=now, expires_at=expires_at, created_at=now, updated_at=now).returning(
            han_provisioning_ops.c.id))).scalar_one()
        return op_id

    # ------------------------------------------------------------------ reading
    async def device(self, esi_id: str, eui64: str) -> ProvisionedDevice | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(han_devices.select().where(
                han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64))).first()
            if row is None:
                return None
            events = (await conn.execute(han_device_events.select().where(
                han_device_events.c.esi_id == esi_id, han_device_events.c.eui64 == eui64).order_by(
                han_device_events.c.id))).all()
        return ProvisionedDevice(
            row.esi_id, row.eui64, row.device_type, DeviceStatus(row.status), row.party_id, row.join_window_ends_at,
            row.last_reason, row.created_at, row.updated_at,
            [DeviceEvent(e.state, e.at, e.reason, e.detail, e.operation_id) for e in events])

    async def premise_history(self, esi_id: str, limit: int = 100, *, provisioned_by: int | None = None,
                              ) -> tuple[list[Operation], list[DeviceEvent]]:
        """The premise's latest operations and its HAN-wide events (initialize, clear, decommission).
        With `provisioned_by`, device operations only on that party's devices."""
        ops_query = han_provisioning_ops.select().where(han_provisioning_ops.c.esi_id == esi_id)
        if provisioned_by is not None:
            own = sa.select(han_devices.c.eui64).where(han_devices.c.esi_id == esi_id,
                                                       han_devices.c.party_id == provisioned_by)
            ops_query = ops_query.where(sa.or_(han_provisioning_ops.c.eui64.is_(None),
                                               han_provisioning_ops.c.eui64.in_(own)))
        async with self.engine.connect() as conn:
            ops = (await conn.execute(ops_query.order_by(han_provisioning_ops.c.id.desc()).limit(limit))).all()
            events = (await conn.execute(han_device_events.select().where(
                han_device_events.c.esi_id == esi_id, han_device_events.c.eui64.is_(None)).order_by(
                han_device_events.c.id.desc()).limit(limit))).all()
        return ([_operation(o) for o in ops],
                [DeviceEvent(e.state, e.at, e.reason, e.detail, e.operation_id) for e in reversed(events)])

    async def operation(self, op_id: int) -> Operation | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(han_provisioning_ops.select().where(
                han_provisioning_ops.c.id == op_id))).first()
        return _operation(row) if row is not None else None

    # ------------------------------------------------------------------ the sender's side
    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Any]:
        """Claim queued operations whose time has come, for one attempt each, until `lease_until`
        (gateway/store/row_claims.py: of several instances, one takes each; a dead instance's come
        back after the lease). A device's operation waits while an earlier HAN-wide one
        (initialize, clear, decommission) of its premise is not finished: a device provisioned
        right after "initialize" must not overtake it at the head-end. Rows with the device's
        `link_key_encrypted`; their `attempts` counts this attempt (the claim's fencing token)."""
        ops = han_provisioning_ops
        earlier = ops.alias("earlier")
        barrier = sa.exists().where(
            earlier.c.esi_id == ops.c.esi_id, earlier.c.id < ops.c.id, earlier.c.kind.in_(PREMISE_KINDS),
            earlier.c.state.in_([QUEUED, SUBMITTED]))
        due = sa.and_(ops.c.state == QUEUED, ops.c.next_attempt_at <= now, ops.c.expires_at > now,
                      sa.or_(ops.c.kind.in_(PREMISE_KINDS), ~barrier))
        async with self.engine.begin() as conn:
            claimed = await row_claims.claim(conn, ops, row_claims.claimable(
                ops, due, order_by=[ops.c.id], limit=limit, of=ops), lease_until=lease_until)
            if not claimed:
                return []
            return list((await conn.execute(sa.select(ops, han_devices.c.link_key_encrypted).outerjoin(
                han_devices, sa.and_(han_devices.c.esi_id == ops.c.esi_id, han_devices.c.eui64 == ops.c.eui64)).where(
                ops.c.id.in_([r.id for r in claimed])).order_by(ops.c.id))).all())

    async def expired(self, now: datetime, limit: int) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(han_provisioning_ops.select().where(
                han_provisioning_ops.c.state == QUEUED, han_provisioning_ops.c.expires_at <= now).limit(
                limit))).all())

    async def overdue(self, now: datetime, limit: int) -> list[Any]:
        """Submitted operations whose result never came, RESULT_GRACE after their end."""
        async with self.engine.connect() as conn:
            return list((await conn.execute(han_provisioning_ops.select().where(
                han_provisioning_ops.c.state == SUBMITTED,
                han_provisioning_ops.c.expires_at <= now - RESULT_GRACE).limit(limit))).all())

    async def requeue_submitted(self, now: datetime, *, lapsed_only: bool) -> int:
        """Operations a route took and never reported the end of (`submitted`) are sent again
        (same request id: the head-end answers with its first result and carries nothing out
        twice), so that a route that is alive follows them. `lapsed_only` (several instances):
        only those whose following lease has run out — the instance that submitted them renews it
        while it lives (`renew_following`) and hands it back when it stops (`hand_back`) — never
        one another live instance's route is following. Without it (one instance: SQLite), all of
        them: a previous run's. A compare-and-set on `state`: of several instances, one requeues
        each."""
        ops = han_provisioning_ops
        cond = [ops.c.state == SUBMITTED, ops.c.expires_at > now]
        if lapsed_only:
            cond.append(ops.c.next_attempt_at <= now)
        async with self.engine.begin() as conn:
            result = await conn.execute(ops.update().where(*cond).values(
                state=QUEUED, next_attempt_at=now, updated_at=now,
                reason="sent again: the instance following it stopped" if lapsed_only
                else "sent again after a restart"))
        return int(result.rowcount or 0)

    async def renew_following(self, claims: dict[int, int], lease_until: datetime) -> set[int]:
        """Move on the following lease of the submitted operations this instance's route follows
        (`claims`: id -> the attempt its claim counted), while they are still submitted under that
        claim. The ids still followed; the others ended or were taken over."""
        ops = han_provisioning_ops
        kept: set[int] = set()
        pairs = sorted(claims.items())
        async with self.engine.begin() as conn:
            for i in range(0, len(pairs), 500):
                kept.update((await conn.execute(ops.update().where(
                    ops.c.state == SUBMITTED, sa.tuple_(ops.c.id, ops.c.attempts).in_(pairs[i:i + 500])).values(
                    next_attempt_at=lease_until).returning(ops.c.id))).scalars())
        return kept

    async def hand_back(self, claims: dict[int, int], now: datetime) -> int:
        """A graceful stop: the operations this instance claimed (queued, being sent) or follows
        (submitted) are due again / free to take over now instead of when the lease runs out.
        Only while the claim is still this instance's (the fencing token)."""
        async with self.engine.begin() as conn:
            return await row_claims.release(conn, han_provisioning_ops, claims, now,
                                            han_provisioning_ops.c.state.in_([QUEUED, SUBMITTED]))

    async def submitted(self, op_id: int, claimed_attempts: int, now: datetime) -> None:
        """The route took the claimed attempt (recorded only while the claim is still this one's)."""
        async with self.engine.begin() as conn:
            await conn.execute(han_provisioning_ops.update().where(
                han_provisioning_ops.c.id == op_id, han_provisioning_ops.c.state == QUEUED,
                han_provisioning_ops.c.attempts == claimed_attempts).values(state=SUBMITTED, updated_at=now))

    async def retry(self, op_id: int, claimed_attempts: int, now: datetime, delay_s: float, reason: str) -> None:
        """The claimed attempt did not reach the head-end: due again after `delay_s`."""
        async with self.engine.begin() as conn:
            await conn.execute(han_provisioning_ops.update().where(
                han_provisioning_ops.c.id == op_id, han_provisioning_ops.c.state == QUEUED,
                han_provisioning_ops.c.attempts == claimed_attempts).values(
                next_attempt_at=now + timedelta(seconds=delay_s), reason=reason[:300], updated_at=now))

    async def fail(self, op_id: int, now: datetime, code: str, detail: str) -> None:
        """The operation ends unsent or refused (by the gateway or the route)."""
        async with self.engine.begin() as conn:
            # Locked: two instances ending the same operation (its expiry) end it once.
            op = (await conn.execute(han_provisioning_ops.select().where(
                han_provisioning_ops.c.id == op_id).with_for_update())).first()
            if op is None or op.state in (DONE, FAILED):
                return
            await finish(conn, op, state=FAILED, at=now, code=code, detail=detail)


async def operation_to_update(conn: AsyncConnection, op_id: int, at: datetime) -> Any | None:
    """The han_provisioning_ops row a route's update names, as read, or None when it is unknown or
    finished (a late duplicate). A queued one becomes submitted first: the route's events can
    overtake the sender's own bookkeeping (the sender's claim counted the attempt). Locked until
    the caller's transaction ends: an update and the operation's expiry on two instances apply
    one after the other."""
    op = (await conn.execute(han_provisioning_ops.select().where(
        han_provisioning_ops.c.id == op_id).with_for_update())).first()
    if op is None or op.state in (DONE, FAILED):
        return None
    if op.state == QUEUED:
        await conn.execute(han_provisioning_ops.update().where(
            han_provisioning_ops.c.id == op.id, han_provisioning_ops.c.state == QUEUED).values(
            state=SUBMITTED, updated_at=at))
    return op


async def latest_operation_for_device(conn: AsyncConnection, esi_id: str, eui64: str) -> int | None:
    latest: int | None = (await conn.execute(sa.select(sa.func.max(han_provisioning_ops.c.id)).where(
        han_provisioning_ops.c.esi_id == esi_id, han_provisioning_ops.c.eui64 == eui64))).scalar_one()
    return latest


async def finish(conn: AsyncConnection, op: Any, *, state: str, at: datetime, code: str | None,
                 detail: str | None) -> None:
    """End an operation (done or failed) and apply its outcome to the device or premise."""
    text = f"{code}: {detail}" if code and detail else code or detail
    await conn.execute(han_provisioning_ops.update().where(han_provisioning_ops.c.id == op.id).values(
        state=state, reason=text[:300] if text else None, updated_at=at))
    if op.kind in PREMISE_KINDS:
        await _premise_outcome(conn, op, state=state, at=at, code=code, detail=detail)
        return
    current = await latest_operation_for_device(conn, op.esi_id, op.eui64)
    if current != op.id:
        # A newer operation (re-provisioned, deleted) owns the device's status; history only.
        await add_event(conn, esi_id=op.esi_id, eui64=op.eui64, operation_id=op.id, at=at, reason=code,
                        detail=detail, state=f"{op.kind}_{state}")
        return
    if state == DONE:
        status = DeviceStatus.JOINED if op.kind == PROVISION_DEVICE else DeviceStatus.REMOVED
    else:
        status = DeviceStatus.FAILED if op.kind == PROVISION_DEVICE else DeviceStatus.DELETE_REQUESTED
    await set_device(conn, op.esi_id, op.eui64, status=status, at=at, code=code, detail=detail, op_id=op.id,
                     event_state=status.value if state == DONE or op.kind == PROVISION_DEVICE else "delete_failed")


async def set_device(conn: AsyncConnection, esi_id: str, eui64: str, *, status: DeviceStatus, at: datetime,
                     code: str | None, detail: str | None, op_id: int | None, event_state: str | None = None) -> None:
    values: dict[str, Any] = {"status": status.value, "updated_at": at}
    if code is not None:
        values["last_reason"] = code
    party_id = (await conn.execute(han_devices.update().where(
        han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64).values(**values).returning(
        han_devices.c.party_id))).scalar_one_or_none()
    await add_event(conn, esi_id=esi_id, eui64=eui64, state=event_state or status.value, at=at, reason=code,
                    detail=detail, operation_id=op_id, party_id=party_id)


async def _premise_outcome(conn: AsyncConnection, op: Any, *, state: str, at: datetime, code: str | None,
                           detail: str | None) -> None:
    await add_event(conn, esi_id=op.esi_id, eui64=None, state=f"{op.kind}_{state}", at=at, reason=code,
                    detail=detail, operation_id=op.id)
    if state != DONE or op.kind == INITIALIZE_HAN:
        return
    # Clear and decommission take every device off the meter.
    reason = "han_cleared" if op.kind == CLEAR_DEVICES else "han_decommissioned"
    on_meter = (await conn.execute(sa.select(han_devices.c.eui64).where(
        han_devices.c.esi_id == op.esi_id, han_devices.c.status != DeviceStatus.REMOVED.value))).scalars().all()
    for eui64 in on_meter:
        await set_device(conn, op.esi_id, eui64, status=DeviceStatus.REMOVED, at=at, code=reason, detail=None,
                         op_id=op.id)


async def handed_operations(store: Store, ids: Sequence[int]) -> list[Any]:
    """The provisioning operations among `ids` (id, esi_id): what a route's notice about one of
    them is checked against, whichever gateway instance handed it to the route."""
    rows: list[Any] = []
    async with store.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            rows.extend((await conn.execute(sa.select(han_provisioning_ops.c.id, han_provisioning_ops.c.esi_id).where(
                han_provisioning_ops.c.id.in_(ids[i:i + 500])))).all())
    return rows
