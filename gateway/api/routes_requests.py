"""HAN requests (text, price, load control, cancellations), their status, and webhooks."""

from __future__ import annotations

import json
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query, Request, Response

from gateway.api.deps import Pages, Svc, ThirdParty
from gateway.api.links import links, to
from gateway.api.params import DbId
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import (
    PROBLEM_RESPONSES,
    AcceptedOut,
    DeadLetterOut,
    DeliveryOut,
    DeviceStateOut,
    HanRequestOut,
    PageOut,
    RequeuedOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)
from gateway.errors import FieldError, InvalidRequest, NotFound, Unavailable
from gateway.pipeline.dead_letters import list_dead_letters, redeliver
from gateway.pipeline.requests import HanRequestBody
from gateway.pipeline.service import RequestService
from gateway.pipeline.webhook_targets import TargetError, check_registration, parse_url
from gateway.pipeline.webhooks import new_secret
from gateway.store.cursors import id_cursor
from gateway.store.schema import han_deliveries, han_device_states, han_requests, han_transitions, webhooks

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
    service = RequestService(svc.store, svc.config.pipeline)
    accepted = await service.submit(who, body, svc.clock.now())
    _poke(request)
    return AcceptedOut.model_validate(accepted.as_dict())


async def _own(svc: Svc, who: ThirdParty, request_id: int) -> Any:
    async with svc.store.engine.connect() as conn:
        row = (await conn.execute(han_requests.select().where(han_requests.c.id == request_id))).first()
    if row is None or row.party_id != who.party_id:
        raise NotFound(f"no han request {request_id}", code="unknown_han_request")  # as the policy says
    return row


@router.get("/han-requests/{request_id}", response_model=HanRequestOut,
            summary="A request's summary: premises and devices by state")
async def get_request(svc: Svc, who: ThirdParty, request_id: DbId) -> HanRequestOut:
    row = await _own(svc, who, request_id)
    async with svc.store.engine.connect() as conn:
        by_state: dict[str, int] = dict((await conn.execute(sa.select(han_deliveries.c.state, sa.func.count()).where(
            han_deliveries.c.request_id == request_id).group_by(han_deliveries.c.state))).all())
        parts = (await conn.execute(sa.select(han_requests.c.id).where(
            han_requests.c.part_of_request_id == request_id).order_by(han_requests.c.id))).scalars().all()
        devices: dict[str, int] = dict((await conn.execute(sa.select(han_device_states.c.state, sa.func.count()).join(
            han_deliveries, han_deliveries.c.id == han_device_states.c.delivery_id).where(
            han_deliveries.c.request_id == request_id).group_by(han_device_states.c.state))).all())
    return HanRequestOut(
        id=row.id, kind=row.kind, state=row.state, se_id=row.se_id, created_at=row.created_at,
        targeted=row.targeted, excluded=json.loads(row.excluded), fanout=row.target_all,
        cancels_request_id=row.cancels_request_id,
        # A price's block period is a companion request (its own SE event and deliveries).
        part_of_request_id=row.part_of_request_id, block_period_request_id=parts[0] if parts else None,
        starts_at=row.starts_at, ends_at=row.ends_at, premises_by_state=by_state, devices_by_state=devices,
        request=json.loads(row.body))


@router.get("/han-requests/{request_id}/deliveries", response_model=PageOut[DeliveryOut],
            summary="Per premise and per device: states with their times (paginated)")
async def get_deliveries(svc: Svc, who: ThirdParty, request_id: DbId, page: Pages,  # noqa: PLR0917
                         state: Annotated[str | None, Query()] = None,
                         esi_id: Annotated[str | None, Query()] = None) -> PageOut[DeliveryOut]:
    await _own(svc, who, request_id)
    after = id_cursor(page.cursor)
    query = han_deliveries.select().where(han_deliveries.c.request_id == request_id,
                                          han_deliveries.c.id > after)
    if state is not None:
        query = query.where(han_deliveries.c.state == state)
    if esi_id is not None:
        query = query.where(han_deliveries.c.esi_id == esi_id)
    async with svc.store.engine.connect() as conn:
        rows = (await conn.execute(query.order_by(han_deliveries.c.id).limit(page.limit))).all()
        ids = [r.id for r in rows]
        devs = (await conn.execute(han_device_states.select().where(
            han_device_states.c.delivery_id.in_(ids)))).all() if ids else []
        hist = (await conn.execute(han_transitions.select().where(
            han_transitions.c.delivery_id.in_(ids)).order_by(han_transitions.c.id))).all() if ids else []
    items = [DeliveryOut(
        delivery_id=r.id, esi_id=r.esi_id, state=r.state, reason=r.reason,
        # the SE message id / issuer event id this item carries; a cancel's item names the
        # request it cancels (a cancel-all has one item per cancelled event)
        se_id=r.se_id, cancels_request_id=r.cancels_request_id,
        reference=r.reference,  # the route's (head-end's) id for this item
        attempts=r.attempts, se_version=r.se_version, command=r.command, frame=r.frame, updated_at=r.updated_at,
        devices=[DeviceStateOut(eui64=d.eui64, state=d.state, at=d.at, detail=d.detail)
                 for d in devs if d.delivery_id == r.id],
        history=[DeviceStateOut(eui64=h.eui64, state=h.state, at=h.at, detail=h.detail)
                 for h in hist if h.delivery_id == r.id]) for r in rows]
    return PageOut[DeliveryOut](items=items, next_cursor=str(rows[-1].id) if len(rows) == page.limit else None)


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
    async with svc.store.engine.begin() as conn:
        result = await conn.execute(webhooks.insert().values(
            party_id=who.party_id, url=str(url), secret=stored_secret, created_at=now))
    assert result.inserted_primary_key is not None
    return WebhookCreated(id=int(result.inserted_primary_key[0]), url=str(url), created_at=now, secret=secret)


@router.get("/webhooks", tags=["webhooks"], response_model=PageOut[WebhookOut],
            summary="Your webhooks, oldest first (paginated)")
async def list_webhooks(svc: Svc, who: ThirdParty, page: Pages) -> PageOut[WebhookOut]:
    async with svc.store.engine.connect() as conn:
        rows = (await conn.execute(webhooks.select().where(
            webhooks.c.party_id == who.party_id, webhooks.c.deleted_at.is_(None),
            webhooks.c.id > id_cursor(page.cursor)).order_by(webhooks.c.id).limit(page.limit))).all()
    return PageOut[WebhookOut](items=[WebhookOut(id=r.id, url=r.url, created_at=r.created_at) for r in rows],
                            next_cursor=str(rows[-1].id) if len(rows) == page.limit else None)


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], response_class=Response,
               summary="Stop a webhook: no more events are sent to it")
async def delete_webhook(svc: Svc, who: ThirdParty, webhook_id: DbId) -> Response:
    async with svc.store.engine.begin() as conn:
        result = await conn.execute(webhooks.update().where(
            webhooks.c.id == webhook_id, webhooks.c.party_id == who.party_id,
            webhooks.c.deleted_at.is_(None)).values(deleted_at=svc.clock.now()))
    if not result.rowcount:
        raise NotFound(f"no webhook {webhook_id} of yours", code="unknown_webhook")
    return Response(status_code=204)


async def _own_webhook(svc: Svc, who: ThirdParty, webhook_id: int) -> None:
    async with svc.store.engine.connect() as conn:
        found = (await conn.execute(sa.select(webhooks.c.id).where(
            webhooks.c.id == webhook_id, webhooks.c.party_id == who.party_id,
            webhooks.c.deleted_at.is_(None)))).first()
    if found is None:
        raise NotFound(f"no webhook {webhook_id} of yours", code="unknown_webhook")


@router.get("/webhooks/{webhook_id}/dead-letters", tags=["webhooks"], response_model=PageOut[DeadLetterOut],
            summary="Events given up on (attempts or age used up), oldest first (paginated)")
async def get_dead_letters(svc: Svc, who: ThirdParty, webhook_id: DbId, page: Pages) -> PageOut[DeadLetterOut]:
    await _own_webhook(svc, who, webhook_id)
    items = await list_dead_letters(svc.store, webhook_id, after=id_cursor(page.cursor), limit=page.limit)
    return PageOut[DeadLetterOut](
        items=[DeadLetterOut(id=d.id, request_id=d.request_id, event=d.body, created_at=d.created_at,
                             attempts=d.attempts, last_error=d.last_error, dead_at=d.dead_at) for d in items],
        next_cursor=str(items[-1].id) if len(items) == page.limit else None)


@router.post("/webhooks/{webhook_id}/dead-letters/redeliver", tags=["webhooks"], response_model=RequeuedOut,
             summary="Send every dead letter of this webhook again")
async def redeliver_all(svc: Svc, who: ThirdParty, webhook_id: DbId) -> RequeuedOut:
    await _own_webhook(svc, who, webhook_id)
    return RequeuedOut(requeued=await redeliver(svc.store, webhook_id, svc.clock.now()))


@router.post("/webhooks/{webhook_id}/dead-letters/{event_id}/redeliver", tags=["webhooks"],
             response_model=RequeuedOut, summary="Send one dead letter again")
async def redeliver_one(svc: Svc, who: ThirdParty, webhook_id: DbId, event_id: DbId) -> RequeuedOut:
    await _own_webhook(svc, who, webhook_id)
    requeued = await redeliver(svc.store, webhook_id, svc.clock.now(), event_id)
    if not requeued:
        raise NotFound(f"no dead letter {event_id} on webhook {webhook_id}", code="unknown_dead_letter")
    return RequeuedOut(requeued=requeued)


__all__ = ["FieldError", "InvalidRequest", "router"]
