"""Cancelling HAN requests: a party's cancel of its text or load-control event, its cancel of every
event of its own at a premise, and the gateway's withdrawal of work whose agreement ended.

Each is one transaction: pending deliveries of the original are cancelled before they are sent,
premises it reached (or may have: submitted) get the SE cancel as deliveries of a new cancel request
of the same party (so its status is visible like any request's), and the arbitration's records of
cancelled load-control events end, so other providers may use the time.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from ams_adapters.contract import OperationKind as RequestKind
from gateway.authz import authorize
from gateway.domain.records import Principal
from gateway.errors import FieldError, Forbidden, InvalidRequest, NotFound
from gateway.pipeline import delivery_queue
from gateway.pipeline.accepted import Accepted
from gateway.pipeline.requests import (
    ACTION_FOR_KIND,
    CancelAllLoadControlRequest,
    CancelLoadControlRequest,
    CancelTextRequest,
    cancel_lce_command,
    cancel_text_command,
)
from gateway.store import han_requests as requests_sql
from gateway.store.store import Store
from gateway.store.unit_of_work import Connection

CANCEL_WINDOW = timedelta(hours=1)  # how long a cancel may wait for an unreachable meter
CANCELLED_BY_REQUEST = "cancelled by request"


async def cancel(store: Store, principal: Principal, body: CancelTextRequest | CancelLoadControlRequest,
                 now: datetime) -> Accepted:
    """The party's cancel of one of its text or load-control requests."""
    is_text = isinstance(body, CancelTextRequest)
    original_kind = RequestKind.TEXT if is_text else RequestKind.LOAD_CONTROL
    kind = RequestKind.CANCEL_TEXT if is_text else RequestKind.CANCEL_LOAD_CONTROL
    assert principal.party_id is not None
    async with store.transaction() as tx:
        original = await _own_request(tx, principal, body.request_id, original_kind)
        effective = _effective_time(body, original, now) if isinstance(body, CancelLoadControlRequest) else None
        esi_ids = await _cancel_pending(tx, original, now)
        if not is_text:
            await requests_sql.end_request_events(tx, original.id, effective)
        request_id = await _insert_cancel_request(tx, principal.party_id, kind, body, original, len(esi_ids), now)
        await _insert_cancels(tx, principal.party_id, request_id, original, esi_ids, body, now)
    return Accepted(request_id, kind.value, original.se_id, len(esi_ids))


async def cancel_all(store: Store, principal: Principal, body: CancelAllLoadControlRequest,
                     now: datetime) -> Accepted:
    """Cancel every load-control event of *this* party on a premise. The SE
    CancelAllLoadControlEvents command would cancel other providers' events too, so the
    gateway sends one CancelLoadControlEvent per event of the caller instead: one delivery
    per (premise, event), each carrying the event's issuer id and naming its request, so the
    dispatcher sends each like any other item and its status is visible per event."""
    assert principal.party_id is not None
    decision = await authorize(store, principal, ACTION_FOR_KIND[RequestKind.CANCEL_ALL_LOAD_CONTROL],
                               body.esi_id, now=now)
    if not decision.visible:  # the same answer as the policy's for a premise the party may not see
        raise NotFound(f"no premise {body.esi_id} visible to you", code="unknown_premise")
    if not decision.allowed:
        raise Forbidden(f"cancel_all_load_control on {body.esi_id} refused: {decision.reason}",
                        code=decision.reason)
    async with store.transaction() as tx:
        event_requests = await requests_sql.active_event_requests(tx, body.esi_id, principal.party_id, now)
        request_id = await requests_sql.insert_request(
            tx, party_id=principal.party_id, kind=RequestKind.CANCEL_ALL_LOAD_CONTROL.value,
            body_json=body.model_dump_json(), se_id=None, now=now)
        sent = 0
        for orig_id in event_requests:
            original = await requests_sql.request_in(tx, orig_id)
            assert original is not None  # an event's request is never deleted
            rows = await requests_sql.request_deliveries(tx, orig_id, body.esi_id)
            await delivery_queue.set_delivery_state(tx, [r for r in rows if r.state == delivery_queue.QUEUED],
                                                    delivery_queue.CANCELLED, now, reason=CANCELLED_BY_REQUEST,
                                                    only_from=[delivery_queue.QUEUED])
            reached = [(r.esi_id, r.se_version) for r in rows
                       if r.state in delivery_queue.SENT_STATES]
            await _insert_cancels(tx, principal.party_id, request_id, original, reached, body, now)
            sent += len(reached)
        await requests_sql.end_party_events(tx, body.esi_id, principal.party_id, None)
        # `targeted` counts premises, as for every request: 1 if an SE cancel goes out.
        targeted = 1 if sent else 0
        await requests_sql.set_targeted(tx, request_id, targeted)
    return Accepted(request_id, RequestKind.CANCEL_ALL_LOAD_CONTROL.value, None, targeted)


async def withdraw(store: Store, request_id: int, deliveries: list[Any], now: datetime) -> int:
    """The agreement behind these deliveries ended: send the SE cancel to each premise (as a
    cancel request of the same party, so its status is visible) and mark them cancelled."""
    async with store.transaction() as tx:
        changed = await delivery_queue.set_delivery_state(
            tx, deliveries, delivery_queue.CANCELLED, now, reason="agreement ended: SE cancel sent",
            only_from=delivery_queue.SENT_STATES)
        if not changed:
            return 0
        original = await requests_sql.request_in(tx, request_id)
        assert original is not None  # its deliveries were just read
        is_text = original.kind == RequestKind.TEXT.value
        kind = RequestKind.CANCEL_TEXT if is_text else RequestKind.CANCEL_LOAD_CONTROL
        body: CancelTextRequest | CancelLoadControlRequest = (
            CancelTextRequest(kind="cancel_text", request_id=request_id) if is_text
            else CancelLoadControlRequest(kind="cancel_load_control", request_id=request_id))
        esi_ids = {t.esi_id for t in changed}
        versions = await requests_sql.delivery_versions(tx, request_id, esi_ids)
        cancel_id = await _insert_cancel_request(tx, original.party_id, kind, body, original, len(esi_ids), now)
        await _insert_cancels(tx, original.party_id, cancel_id, original,
                              [(e, versions[e]) for e in sorted(esi_ids)], body, now)
        if kind is RequestKind.CANCEL_LOAD_CONTROL:
            await requests_sql.cancel_events_at(tx, request_id, esi_ids)
    return len(changed)


async def _own_request(tx: Connection, principal: Principal, request_id: int, kind: RequestKind) -> Any:
    row = await requests_sql.request_in(tx, request_id)
    if row is None or row.party_id != principal.party_id:
        # Another party's request is not even visible: a party never cancels another's event.
        raise NotFound(f"no han request {request_id}", code="unknown_han_request")
    if row.kind != kind.value:
        raise InvalidRequest(f"request {request_id} is a {row.kind} request, not {kind.value}",
                             errors=[FieldError("request_id", "wrong_kind", f"a {kind.value} request",
                                                request_id)])
    return row


async def _cancel_pending(tx: Connection, original: Any, now: datetime) -> list[tuple[str, str]]:
    """Pending work of `original` is removed; returns (ESI ID, SE version) of premises the
    request already reached (or may have: submitted, unknown), which need the SE cancel."""
    if original.fanout_after is not None:
        await requests_sql.stop_fanout(tx, original.id, "cancelled")
    rows = await requests_sql.request_deliveries(tx, original.id)
    pending = [r for r in rows if r.state == delivery_queue.QUEUED]
    await delivery_queue.set_delivery_state(tx, pending, delivery_queue.CANCELLED, now,
                                            reason=CANCELLED_BY_REQUEST, only_from=[delivery_queue.QUEUED])
    return [(r.esi_id, r.se_version) for r in rows if r.state in delivery_queue.SENT_STATES]


async def _insert_cancel_request(tx: Connection, party_id: int, kind: RequestKind,  # noqa: PLR0917
                                 body: CancelTextRequest | CancelLoadControlRequest, original: Any,
                                 targeted: int, now: datetime) -> int:
    """The cancel's own request row (its command is set with its deliveries)."""
    return await requests_sql.insert_request(
        tx, party_id=party_id, kind=kind.value, body_json=body.model_dump_json(), se_id=original.se_id,
        now=now, targeted=targeted, cancels=original.id)


async def _insert_cancels(tx: Connection, party_id: int, request_id: int, original: Any,  # noqa: PLR0917
                          esi_ids: list[tuple[str, str]], body: Any, now: datetime) -> None:
    """The SE cancel of `original` to each (ESI ID, SE version), as deliveries of `request_id`."""
    expires = now + CANCEL_WINDOW
    if original.kind == RequestKind.TEXT.value:
        command = cancel_text_command(original.se_id, now, expires)
    else:
        orig = json.loads(original.body)
        effective = getattr(body, "effective_time", None)
        command = cancel_lce_command(original.se_id, orig["device_classes"],
                                     orig.get("utility_enrollment_group", 0), effective,
                                     getattr(body, "randomize_end", False), now, expires)
    shared = body.kind != RequestKind.CANCEL_ALL_LOAD_CONTROL.value
    if shared:
        await requests_sql.set_command(tx, request_id, delivery_queue.shared_command(command))
    await delivery_queue.insert_deliveries(
        tx, request_id=request_id, party_id=party_id, se_id=original.se_id, command=command,
        targets=[delivery_queue.DeliveryTarget(e, v, None) for e, v in esi_ids], now=now, expires_at=expires,
        shared=shared, cancels_request_id=original.id)


def _effective_time(body: CancelLoadControlRequest, original: Any, now: datetime) -> datetime | None:
    """When the cancel takes effect: None for now (also for a time already past); refused when
    it has no time zone or falls after the event's end (the devices would refuse it)."""
    effective = body.effective_time
    if effective is None:
        return None
    if effective.tzinfo is None:
        raise InvalidRequest("effective_time needs a time zone", errors=[FieldError(
            "effective_time", "naive_time", "give a time zone (e.g. Z)", effective.isoformat())])
    if original.ends_at is not None and effective >= original.ends_at:
        raise InvalidRequest("effective_time is not before the event's end", errors=[FieldError(
            "effective_time", "effective_time_after_end",
            f"before the event's end {original.ends_at.isoformat()}", effective.isoformat())])
    return effective if effective > now else None
