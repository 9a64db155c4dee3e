"""The event feed: `GET /v1/events`, a third party's own events in id order (the catch-up a client
reads after downtime, and the same events, ids and bodies its webhooks and MQTT get)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import Svc, ThirdParty
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import PROBLEM_RESPONSES, EventOut, EventPageOut
from gateway.errors import FieldError, GatewayError
from gateway.store import event_retention, events

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["events"])

MAX_EVENT_ID = 2**63 - 1
"""Event ids are bigint on PostgreSQL (and SQLite's 64-bit rowid): `after` beyond is a 422."""


@router.get("/events", response_model=EventPageOut,
            summary="Your events after an id, oldest first: agreements, devices, deliveries, dead letters")
async def list_events(
    svc: Svc, who: ThirdParty,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="the last event id you have (0: from the "
                                "start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPageOut:
    assert who.party_id is not None  # a third party's principal has its party
    swept = await event_retention.horizon(svc.store.engine, who.party_id)
    if 0 < after < swept:
        # Some events after `after` were deleted by the retention sweep: a page from here would skip
        # them without a word. after=0 ("from the start": whatever is kept) is never refused.
        raise EventsExpired(after, swept, svc.config.events.retention_days)
    found = await events.events_after(svc.store.engine, who.party_id, after, limit)
    return EventPageOut(items=[EventOut(id=e.id, type=e.type, subject=e.subject, created_at=e.created_at,
                                        event=json.loads(e.body)) for e in found],
                        next_after=found[-1].id if found else after)


class EventsExpired(GatewayError):
    status = 410
    code = "events_expired"
    title = "Events after this cursor were deleted (retention)"

    def __init__(self, after: int, swept: int, days: int) -> None:
        super().__init__(
            f"events up to id {swept} of yours are past retention ({days} days) and deleted, and your cursor "
            f"{after} is below that: rebuild your state from the REST API, then read on with after={swept}",
            errors=[FieldError("after", "events_expired", f"below the oldest cursor still complete ({swept})",
                               after, swept)])
