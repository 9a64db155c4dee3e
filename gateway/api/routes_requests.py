"""HAN requests (text, price, load control, cancellations), their status, and webhooks."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from ams_adapters.contract import OperationKind as RequestKind
from gateway.api.deps import Pages, Services, Svc, ThirdParty, Who
from gateway.api.links import links, to
from gateway.api.params import DbId
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import (
    PROBLEM_RESPONSES,
    AcceptedOut,
    DeadLetterOut,
    DeliveryOut,
    DeviceStateOut,
    HanRequestListItemOut,
    HanRequestOut,
    PageOut,
    RequeuedOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)
from gateway.domain.model import HanRequestState, Role
from gateway.domain.records import Principal
from gateway.errors import FieldError, Forbidden, InvalidRequest, NotFound, Unavailable
from gateway.pipeline.dispatcher import Dispatcher
from gateway.pipeline.requests import HanRequestBody
from gateway.pipeline.service import RequestService
from gateway.pipeline.webhook_targets import TargetError, check_registration, parse_url
from gateway.pipeline.webhooks import new_secret
from gateway.store import han_requests
from gateway.store import webhooks as webhook_store
from gateway.store.cursors import id_cursor

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["han requests"])


def _poke(request: Request) -> None:
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.poke()


@router.post("/han-requests", status_code=202, response_model=AcceptedOut, responses=links(
    202, GetRequest=to("/v1/han-requests/{request_id}", "get", request_id="$response.body#/id"),
    GetDeliveries=to("/v1/han-requests/{request_id}/deliveries", "get", request_id="$response.body#/id")),
             summary="Send a text, price, load-control event or cancellation to premises (committed before the "
             "answer)")
async def create_request(svc: Svc, who: ThirdParty, request: Request,
                         body: Annotated[HanRequestBody, Body()]) -> AcceptedOut:
    accepted = await accept_request(svc, who, body, getattr(request.app.state, "dispatcher", None))
    _poke(request)
    return accepted


async def accept_request(svc: Services, who: Principal, body: Any, dispatcher: Dispatcher | None) -> AcceptedOut:
    """Accept a validated HAN request of an admitted caller, whatever the channel (REST here, MQTT in
    gateway/api/submission.py): the 202 summary."""
    # The dispatcher's routes' text limits apply.
    service = RequestService(svc.store, svc.config.pipeline, None if dispatcher is None else dispatcher.routes)
    accepted = await service.submit(who, body, svc.clock.now())
    return AcceptedOut.model_validate(accepted.as_dict())


def _aware(field: str, value: datetime | None) -> datetime | None:
    """A time filter must say its offset: a bare local time would be read in whatever zone."""
    if value is not None and value.utcoffset() is None:
        raise InvalidRequest(f"{field} has no UTC offset", errors=[FieldError(
            field, "timezone_required", "an ISO 8601 time with its offset, e.g. 2026-01-15T12:00:00Z",
            value.isoformat())])
    return value


@router.get("/han-requests", response_model=PageOut[HanRequestListItemOut],
            summary="Your requests, oldest first, filtered by kind, state and creation time (paginated)")
async def list_requests(  # noqa: PLR0917
        svc: Svc, who: Who, page: Pages,
        kind: Annotated[list[RequestKind] | None, Query(description="one or more kinds")] = None,
        state: Annotated[list[HanRequestState] | None, Query(description="the request's own state")] = None,
        created_after: Annotated[datetime | None, Query(description="created at or after (with offset)")] = None,
        created_before: Annotated[datetime | None, Query(description="created before (with offset)")] = None,
) -> PageOut[HanRequestListItemOut]:
    """A third party's own requests; the operator sees every request (its device writes among them)."""
    after = id_cursor(page.cursor)
    if who.role is not Role.OPERATOR and who.role is not Role.THIRD_PARTY:
        raise Forbidden("requests are for operators and their third parties", code="forbidden")
    since, until = _aware("created_after", created_after), _aware("created_before", created_before)
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("created_after is not before created_before", errors=[FieldError(
            "created_after", "empty_interval", f"must be before created_before ({until.isoformat()})",
            since.isoformat())])
    rows = await han_requests.list_requests(
        svc.store.engine, who.party_id if who.role is Role.THIRD_PARTY else None, after=after, limit=page.limit,
        kinds=[k.value for k in kind or ()], states=[s.value for s in state or ()],
        created_after=since, created_before=until)
    return PageOut[HanRequestListItemOut](items=[HanRequestListItemOut(
        id=r.id, kind=r.kind, state=r.state, se_id=r.se_id, created_at=r.created_at, targeted=r.targeted,
        fanout=r.target_all, cancels_request_id=r.cancels_request_id, part_of_request_id=r.part_of_request_id,
        starts_at=r.starts_at, ends_at=r.ends_at) for r in rows],
        next_cursor=str(rows[-1].id) if len(rows) == page.limit else None)


async def _own(svc: Svc, who: Who, request_id: int) -> Any:
    """The request row; a third party's own only (the operator reads every request, its own device
    writes among them)."""
    row = await han_requests.get_request(svc.store.engine, request_id)
    if row is None or (who.role is not Role.OPERATOR and row.party_id != who.party_id):
        raise NotFound(f"no han request {request_id}", code="unknown_han_request")  # as the policy says
    return row


@router.get("/han-requests/{request_id}", response_model=HanRequestOut,
            summary="A request's summary: premises and devices by state")
async def get_request(svc: Svc, who: Who, request_id: DbId) -> HanRequestOut:
    row = await _own(svc, who, request_id)
    summary = await han_requests.summarize(svc.store.engine, request_id)
    parts = summary.parts
    return HanRequestOut(
        id=row.id, kind=row.kind, state=row.state, se_id=row.se_id, created_at=row.created_at,
        targeted=row.targeted, excluded=json.loads(row.excluded), fanout=row.target_all,
        cancels_request_id=row.cancels_request_id,
        # A price's block period is a companion request (its own SE event and deliveries).
        part_of_request_id=row.part_of_request_id, block_period_request_id=parts[0] if parts else None,
        starts_at=row.starts_at, ends_at=row.ends_at, premises_by_state=summary.premises_by_state,
        devices_by_state=summary.devices_by_state,
        request=json.loads(row.body))


@router.get("/han-requests/{request_id}/deliveries", response_model=PageOut[DeliveryOut],
            summary="Per premise and per device: states with their times (paginated)")
async def get_deliveries(svc: Svc, who: Who, request_id: DbId, page: Pages,  # noqa: PLR0917
                         state: Annotated[str | None, Query()] = None,
                         esi_id: Annotated[str | None, Query()] = None) -> PageOut[DeliveryOut]:
    after = id_cursor(page.cursor)  # a malformed cursor is a 422 whether the request exists or not
    await _own(svc, who, request_id)
    found = await han_requests.list_deliveries(svc.store.engine, request_id, after=after,
                                               limit=page.limit, state=state, esi_id=esi_id)
    items = [DeliveryOut(
        delivery_id=r.id, esi_id=r.esi_id, state=r.state, reason=r.reason,
        # the SE message id / issuer event id this item carries; a cancel's item names the
        # request it cancels (a cancel-all has one item per cancelled event)
        se_id=r.se_id, cancels_request_id=r.cancels_request_id,
        reference=r.reference,  # the route's (head-end's) id for this item
        attempts=r.attempts, se_version=r.se_version, command=r.command, frame=r.frame, updated_at=r.updated_at,
        devices=[DeviceStateOut(eui64=d.eui64, state=d.state, at=d.at, detail=d.detail)
                 for d in item.devices],
        history=[DeviceStateOut(eui64=h.eui64, state=h.state, at=h.at, detail=h.detail)
                 for h in item.history]) for item in found for r in (item.row,)]
    return PageOut[DeliveryOut](items=items, next_cursor=str(found[-1].row.id) if len(found) == page.limit else None)


@router.post("/webhooks", status_code=201, tags=["webhooks"], response_model=WebhookCreated,
             summary="Register a URL for signed delivery events (the secret is shown once)")
async def create_webhook(svc: Svc, who: ThirdParty, body: WebhookIn) -> WebhookCreated:
    settings = svc.config.pipeline
    try:
        url = parse_url(body.url)
        await check_registration(url, settings.webhook_allowed_networks,
                                 timeout=min(5.0, settings.webhook_timeout_seconds))
    except TargetError as exc:
        raise InvalidRequest(f"url: {body.url!r} is invalid: {exc.message}",
                             errors=[FieldError("url", exc.code, exc.message, body.url)]) from None
    secret = new_secret()
    if svc.store.secret_sealer is None:
        raise Unavailable("webhook signing secrets are stored sealed with the operator's key: set [security] "
                          "device_key_secret (or HANGW_SECURITY__DEVICE_KEY_SECRET, or device_key_file)",
                          code="secrets_key_missing")
    stored_secret = svc.store.secret_sealer.seal_text(secret)
    now = svc.clock.now()
    webhook_id = await webhook_store.create_webhook(svc.store.engine, party_id=who.party_id, url=str(url),
                                                   sealed_secret=stored_secret, now=now)
    return WebhookCreated(id=webhook_id, url=str(url), created_at=now, secret=secret)


@router.get("/webhooks", tags=["webhooks"], response_model=PageOut[WebhookOut],
            summary="Your webhooks, oldest first (paginated)")
async def list_webhooks(svc: Svc, who: ThirdParty, page: Pages) -> PageOut[WebhookOut]:
    rows = await webhook_store.list_webhooks(svc.store.engine, who.party_id, after=id_cursor(page.cursor),
                                             limit=page.limit)
    return PageOut[WebhookOut](items=[WebhookOut(id=r.id, url=r.url, created_at=r.created_at) for r in rows],
                            next_cursor=str(rows[-1].id) if len(rows) == page.limit else None)


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], response_class=Response,
               summary="Stop a webhook: no more events are sent to it")
async def delete_webhook(svc: Svc, who: ThirdParty, webhook_id: DbId) -> Response:
    if not await webhook_store.delete_webhook(svc.store.engine, webhook_id, who.party_id, svc.clock.now()):
        raise NotFound(f"no webhook {webhook_id} of yours", code="unknown_webhook")
    return Response(status_code=204)


async def _own_webhook(svc: Svc, who: ThirdParty, webhook_id: int) -> None:
    if not await webhook_store.owns_webhook(svc.store.engine, webhook_id, who.party_id):
        raise NotFound(f"no webhook {webhook_id} of yours", code="unknown_webhook")


@router.get("/webhooks/{webhook_id}/dead-letters", tags=["webhooks"], response_model=PageOut[DeadLetterOut],
            summary="Events given up on (attempts or age used up), oldest first (paginated)")
async def get_dead_letters(svc: Svc, who: ThirdParty, webhook_id: DbId, page: Pages) -> PageOut[DeadLetterOut]:
    await _own_webhook(svc, who, webhook_id)
    items = await webhook_store.list_dead_letters(svc.store.engine, webhook_id, after=id_cursor(page.cursor),
                                                  limit=page.limit)
    return PageOut[DeadLetterOut](
        items=[DeadLetterOut(id=d.id, event_id=d.event_id, request_id=d.request_id, subject=d.subject, event=d.body,
                             created_at=d.created_at, attempts=d.attempts, last_error=d.last_error,
                             dead_at=d.dead_at) for d in items],
        next_cursor=str(items[-1].id) if len(items) == page.limit else None)


@router.post("/webhooks/{webhook_id}/dead-letters/redeliver", tags=["webhooks"], response_model=RequeuedOut,
             summary="Send every dead letter of this webhook again")
async def redeliver_all(svc: Svc, who: ThirdParty, webhook_id: DbId) -> RequeuedOut:
    await _own_webhook(svc, who, webhook_id)
    return RequeuedOut(requeued=await webhook_store.redeliver(svc.store.engine, webhook_id, svc.clock.now()))


@router.post("/webhooks/{webhook_id}/dead-letters/{event_id}/redeliver", tags=["webhooks"],
             response_model=RequeuedOut, summary="Send one dead letter again")
async def redeliver_one(svc: Svc, who: ThirdParty, webhook_id: DbId, event_id: DbId) -> RequeuedOut:
    await _own_webhook(svc, who, webhook_id)
    requeued = await webhook_store.redeliver(svc.store.engine, webhook_id, svc.clock.now(), event_id)
    if not requeued:
        raise NotFound(f"no dead letter {event_id} on webhook {webhook_id}", code="unknown_dead_letter")
    return RequeuedOut(requeued=requeued)


__all__ = ["FieldError", "InvalidRequest", "router"]
