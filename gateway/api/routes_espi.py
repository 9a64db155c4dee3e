"""Green Button Connect My Data (NAESB REQ.21 ESPI, `{public_url}/espi/1_1/resource/…`): a third
party reads the usage data of its Energy Data agreement as ESPI Atom feeds.

The subscription is the Energy Data agreement (`{subscription_id}` = the agreement's id): its
premises are the UsagePoints (one per ESI ID), its period bounds the data. The party authenticates
with its API token (Bearer); the OAuth 2 authorization-code flow, ApplicationInformation,
Authorization and Bulk resources are not built (docs/green-button.md) — the customer's acceptance of
the agreement is the consent. Another party's agreement, or an id that is no Energy Data agreement,
answers 404 exactly as an unknown id; an agreement not in force, a grant coarser than 15 minutes,
and a `published-min`/`published-max` window outside the agreement's period answer 403 with the
reason, before any byte of the feed is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import AwareDatetime

from gateway.api.deps import Svc
from gateway.api.params import EsiIdPath
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import PROBLEM_RESPONSES
from gateway.domain.model import Action, AgreementKind, UsageInterval
from gateway.domain.records import Agreement
from gateway.errors import FieldError, Forbidden, InvalidRequest, NotFound
from gateway.greenbutton import CONTENT_TYPE, FeedLinks, espi_feed, stored_rows
from gateway.greenbutton.writer import (
    CHANNELS,
    Paths,
    atom_time,
    entry_document,
    feed_document,
    local_day_bounds,
    local_time_entry,
    meter_reading_entry,
    parse_block_id,
    reading_type_entry,
    usage_point_entry,
)
from gateway.store.store import Store
from gateway.store.usage import StoredRead

PREFIX = "/espi/1_1/resource"
router = APIRouter(route_class=PolicyRoute, prefix=PREFIX, responses=PROBLEM_RESPONSES, tags=["green button"])

ATOM: dict[int | str, dict[str, Any]] = {200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
              "description": "an ESPI Atom feed or entry (application/atom+xml)"}}
INTERVAL_S = 900

SubscriptionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the Energy Data agreement's id")]
PublishedMin = Annotated[AwareDatetime | None, Query(
    alias="published-min", description="first interval start to include (on a 15-minute boundary); "
    "default: the start of the agreement's period")]
PublishedMax = Annotated[AwareDatetime | None, Query(
    alias="published-max", description="end (exclusive) of the interval starts included; default: "
    "the end of the agreement's period, or now if sooner")]
MeterReadingId = Annotated[str, Path(max_length=8, description="1: consumption, 2: generation")]
BlockId = Annotated[str, Path(max_length=8, description="the local (America/Chicago) day, YYYYMMDD")]


@dataclass(frozen=True)
class FeedScope:
    """What a request may read: the agreement's premises, and the window of interval starts."""

    agreement: Agreement
    esi_ids: list[str]
    start: datetime
    end: datetime


def _public(request: Request) -> str:
    base: str = request.app.state.services.config.server.public_url
    return base.rstrip("/") + PREFIX


def _links(request: Request, agreement_id: int, self_href: str, title: str) -> FeedLinks:
    base = _public(request)
    return FeedLinks(base, f"{base}/Subscription/{agreement_id}/UsagePoint", self_href, title)


def _floor(moment: datetime) -> datetime:
    unix = int(moment.timestamp())
    return datetime.fromtimestamp(unix - unix % INTERVAL_S, UTC)


async def subscription_scope(store: Store, now: datetime, agreement_id: int, published_min: datetime | None,
                             published_max: datetime | None) -> FeedScope:
    """The agreement (the policy has checked that it is the caller's) and the window to read; a
    typed refusal otherwise."""
    agreement = await store.get_agreement(agreement_id)
    if agreement is None or agreement.kind is not AgreementKind.ENERGY_DATA:
        raise NotFound(f"no subscription {agreement_id}", code="unknown_agreement")
    if not agreement.in_force(now):
        raise Forbidden(f"agreement {agreement_id} is {agreement.state.value}, not in force: its usage data "
                        f"is no longer delivered", code="agreement_not_in_force")
    period = agreement.usage_period()
    if agreement.data is None or period is None:
        raise Forbidden(f"agreement {agreement_id} covers no usage period", code="period_not_covered")
    if agreement.data.interval is not UsageInterval.MIN15:
        raise Forbidden(f"agreement {agreement_id} grants {agreement.data.interval.value} data; Green Button "
                        f"feeds carry 15-minute intervals (read the sums from GET /v1/premises/{{esi_id}}/usage)",
                        code="interval_not_granted")
    errors: list[FieldError] = []
    for name, value in (("published-min", published_min), ("published-max", published_max)):
        if value is not None and (int(value.timestamp()) % INTERVAL_S or value.microsecond):
            errors.append(FieldError(name, "not_on_interval_boundary", "on a 15-minute boundary",
                                     value.isoformat(), INTERVAL_S))
    start = published_min if published_min is not None else period[0]
    end = published_max if published_max is not None else min(period[1], _floor(now))
    if not errors and start >= end:
        errors.append(FieldError("published-max", "period_empty", "after published-min (and the period's start)",
                                 end.isoformat(), start.isoformat()))
    if errors:
        raise InvalidRequest(f"the feed's window has {len(errors)} invalid field(s)", errors=errors)
    if start < period[0] or end > period[1]:
        raise Forbidden(f"the window {start.isoformat()} to {end.isoformat()} is outside agreement "
                        f"{agreement_id}'s period {period[0].isoformat()} to {period[1].isoformat()}",
                        code="period_not_covered")
    return FeedScope(agreement, sorted(p.esi_id for p in agreement.premises), start, end)


async def _scope(request: Request, svc: Svc, agreement_id: int, published_min: datetime | None = None,
                 published_max: datetime | None = None) -> FeedScope:
    now = svc.clock.now()
    try:
        return await subscription_scope(svc.store, now, agreement_id, published_min, published_max)
    except Forbidden as exc:
        # As GET /v1/premises/{esi_id}/usage: a refused read of the party's own agreement is in its
        # audit log (action read_usage), one entry per premise of the agreement.
        agreement = await svc.store.get_agreement(agreement_id)
        for covered in agreement.premises if agreement is not None else []:
            await svc.store.append_audit(at=now, principal=request.state.principal, action=Action.READ_USAGE.value,
                                         esi_id=covered.esi_id, device_eui64=None, agreement_id=agreement_id,
                                         allowed=False, reason=exc.code)
        raise


def _usage_point(scope: FeedScope, esi_id: str) -> str:
    if esi_id not in scope.esi_ids:
        raise NotFound(f"no UsagePoint {esi_id} in subscription {scope.agreement.id}", code="unknown_usage_point")
    return esi_id


def _channel(meter_reading_id: str) -> str:
    for name, channel in CHANNELS.items():
        if channel.meter_reading_id == meter_reading_id:
            return name
    raise NotFound(f"no MeterReading {meter_reading_id} (1: consumption, 2: generation)",
                   code="unknown_meter_reading")


def _atom(body: bytes) -> Response:
    return Response(body, media_type=CONTENT_TYPE)


def _stream(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type=CONTENT_TYPE)


@router.get("/Batch/Subscription/{subscription_id}", responses=ATOM)
async def batch_subscription(request: Request, svc: Svc, subscription_id: SubscriptionId,
                             published_min: PublishedMin = None, published_max: PublishedMax = None) -> Response:
    """The whole subscription as one feed: LocalTimeParameters, then per premise its UsagePoint,
    MeterReadings (consumption; generation where stored), ReadingTypes and a day's IntervalBlock
    per local day of the window. Streamed: the feed's size is not held in memory."""
    scope = await _scope(request, svc, subscription_id, published_min, published_max)
    links = _links(request, subscription_id, str(request.url), f"Green Button subscription {subscription_id}")
    return _stream(espi_feed(stored_rows(svc.store, scope.esi_ids, scope.start, scope.end), links=links,
                             updated=svc.clock.now(), usage_points=scope.esi_ids))


@router.get("/Batch/Subscription/{subscription_id}/UsagePoint/{usage_point_id}", responses=ATOM)
async def batch_usage_point(*, request: Request, svc: Svc, subscription_id: SubscriptionId, usage_point_id: EsiIdPath,
                            published_min: PublishedMin = None, published_max: PublishedMax = None) -> Response:
    """One premise of the subscription as a feed (as the Batch feed, for that UsagePoint)."""
    scope = await _scope(request, svc, subscription_id, published_min, published_max)
    esi_id = _usage_point(scope, usage_point_id)
    links = _links(request, subscription_id, str(request.url), f"Green Button: ESI ID {esi_id}")
    return _stream(espi_feed(stored_rows(svc.store, [esi_id], scope.start, scope.end), links=links,
                             updated=svc.clock.now(), usage_points=[esi_id]))


@router.get("/Subscription/{subscription_id}/UsagePoint", responses=ATOM)
async def usage_points(request: Request, svc: Svc, subscription_id: SubscriptionId) -> Response:
    scope = await _scope(request, svc, subscription_id)
    links = _links(request, subscription_id, str(request.url), f"UsagePoints of subscription {subscription_id}")
    now = svc.clock.now()
    paths, stamp = Paths(links), atom_time(now)
    return _atom(feed_document(links, now, [usage_point_entry(paths, e, stamp) for e in scope.esi_ids]))


@router.get("/Subscription/{subscription_id}/UsagePoint/{usage_point_id}", responses=ATOM)
async def usage_point(request: Request, svc: Svc, subscription_id: SubscriptionId,
                      usage_point_id: EsiIdPath) -> Response:
    scope = await _scope(request, svc, subscription_id)
    esi_id = _usage_point(scope, usage_point_id)
    paths = Paths(_links(request, subscription_id, str(request.url), ""))
    return _atom(entry_document(usage_point_entry(paths, esi_id, atom_time(svc.clock.now()))))


async def _channels(store: Store, scope: FeedScope, esi_id: str) -> list[str]:
    """Consumption always; generation where the premise has generation stored in the window."""
    has_generation = await store.count_usage_in(esi_id, "generation", scope.start, scope.end)
    return ["consumption", "generation"] if has_generation else ["consumption"]


@router.get("/Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading", responses=ATOM)
async def meter_readings(request: Request, svc: Svc, subscription_id: SubscriptionId,
                         usage_point_id: EsiIdPath) -> Response:
    scope = await _scope(request, svc, subscription_id)
    esi_id = _usage_point(scope, usage_point_id)
    links = _links(request, subscription_id, str(request.url), f"MeterReadings of ESI ID {esi_id}")
    now = svc.clock.now()
    paths, stamp = Paths(links), atom_time(now)
    channels = await _channels(svc.store, scope, esi_id)
    entries = [meter_reading_entry(paths, esi_id, CHANNELS[c], stamp) for c in channels]
    return _atom(feed_document(links, now, entries))


@router.get("/Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}",
            responses=ATOM)
async def meter_reading(request: Request, svc: Svc, subscription_id: SubscriptionId, usage_point_id: EsiIdPath,
                        meter_reading_id: MeterReadingId) -> Response:
    scope = await _scope(request, svc, subscription_id)
    esi_id = _usage_point(scope, usage_point_id)
    channel = _channel(meter_reading_id)
    if channel not in await _channels(svc.store, scope, esi_id):
        raise NotFound(f"no MeterReading {meter_reading_id} at ESI ID {esi_id}", code="unknown_meter_reading")
    paths = Paths(_links(request, subscription_id, str(request.url), ""))
    return _atom(entry_document(meter_reading_entry(paths, esi_id, CHANNELS[channel], atom_time(svc.clock.now()))))


@router.get("/Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}"
            "/IntervalBlock", responses=ATOM)
async def interval_blocks(*, request: Request, svc: Svc, subscription_id: SubscriptionId, usage_point_id: EsiIdPath,
                          meter_reading_id: MeterReadingId, published_min: PublishedMin = None,
                          published_max: PublishedMax = None) -> Response:
    """The MeterReading's IntervalBlocks (one per local day) in the window, streamed."""
    scope = await _scope(request, svc, subscription_id, published_min, published_max)
    esi_id = _usage_point(scope, usage_point_id)
    channel = _channel(meter_reading_id)
    links = _links(request, subscription_id, str(request.url), f"IntervalBlocks of ESI ID {esi_id}")
    rows = stored_rows(svc.store, [esi_id], scope.start, scope.end, channels=[channel])
    return _stream(espi_feed(rows, links=links, updated=svc.clock.now(), blocks_only=True))


@router.get("/Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}"
            "/IntervalBlock/{interval_block_id}", responses=ATOM)
async def interval_block(*, request: Request, svc: Svc, subscription_id: SubscriptionId, usage_point_id: EsiIdPath,
                         meter_reading_id: MeterReadingId, interval_block_id: BlockId) -> Response:
    """One local day's block; the whole day must lie in the agreement's period."""
    scope = await _scope(request, svc, subscription_id)
    esi_id = _usage_point(scope, usage_point_id)
    channel = _channel(meter_reading_id)
    day = parse_block_id(interval_block_id)
    if day is None:
        raise NotFound(f"no IntervalBlock {interval_block_id} (blocks are local days, YYYYMMDD)",
                       code="unknown_interval_block")
    bounds = local_day_bounds(day)
    first, last = datetime.fromtimestamp(bounds[0], UTC), datetime.fromtimestamp(bounds[1], UTC)
    period = scope.agreement.usage_period()
    assert period is not None  # subscription_scope refused an agreement without one
    if first < period[0] or last > period[1]:
        raise Forbidden(f"the day {day.isoformat()} is outside agreement {subscription_id}'s period",
                        code="period_not_covered")
    rows = [r async for r in stored_rows(svc.store, [esi_id], first, min(last, scope.end), channels=[channel])]
    readings = [r for r in rows if r.quality != "missing"]
    if not readings:
        raise NotFound(f"no IntervalBlock {interval_block_id} stored for ESI ID {esi_id}",
                       code="unknown_interval_block")
    links = _links(request, subscription_id, str(request.url), "")
    body = b"".join([c async for c in espi_feed(_iterate(rows), links=links, updated=svc.clock.now(),
                                                blocks_only=True)])
    # The block feed holds exactly one entry: lift it out as the entry document.
    text = body.decode()
    entry = text[text.index("<entry>"):text.rindex("</entry>") + len("</entry>")]
    return _atom(entry_document(entry))


async def _iterate(rows: list[StoredRead]) -> AsyncIterator[StoredRead]:
    for row in rows:
        yield row


@router.get("/ReadingType/{reading_type_id}", responses=ATOM)
async def reading_type(request: Request, svc: Svc,
                       reading_type_id: Annotated[str, Path(max_length=8)]) -> Response:
    """The meaning of a MeterReading's values (not party data: the same for every subscription)."""
    for channel in CHANNELS.values():
        if channel.reading_type_id == reading_type_id:
            paths = Paths(_links(request, 0, str(request.url), ""))
            return _atom(entry_document(reading_type_entry(paths, channel, atom_time(svc.clock.now()))))
    raise NotFound(f"no ReadingType {reading_type_id}", code="unknown_reading_type")


@router.get("/LocalTimeParameters/{local_time_parameters_id}", responses=ATOM)
async def local_time_parameters(request: Request, svc: Svc,
                                local_time_parameters_id: Annotated[str, Path(max_length=8)]) -> Response:
    """US Central time as ESPI encodes it (every premise is in Texas)."""
    if local_time_parameters_id != "1":
        raise NotFound(f"no LocalTimeParameters {local_time_parameters_id}", code="unknown_local_time_parameters")
    paths = Paths(_links(request, 0, str(request.url), ""))
    return _atom(entry_document(local_time_entry(paths, atom_time(svc.clock.now()))))

