"""Download My Data: the customer, from their page (`/my/{link}`), downloads the usage of a premise
they are the customer contact of — the Green Button (ESPI) XML file or a CSV — for a period they
choose (local days, America/Chicago; by default the last 30 days).

The link is the authority, as for the rest of the page (gateway/pages/customer.py): a premise that
is not the link's address's answers exactly as one that does not exist. The file is what the store
holds, whichever party's agreement caused it to be read: the data is the customer's own.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.greenbutton import CONTENT_TYPE, FeedLinks, espi_feed, stored_rows
from gateway.greenbutton.writer import LOCAL_ZONE
from gateway.pages.keys import LinkProblem, LinkRefused
from gateway.pages.render import PageRefused, keys, tr
from gateway.store.usage import StoredRead

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

DEFAULT_DAYS = 30
MAX_DAYS = 732  # about the 24 months of history a Texas meter's data is kept
INTERVAL_S = 900
CSV_COLUMNS = ("start_local", "end_local", "start_utc", "channel", "value", "unit", "quality")


def customer_email(request: Request, svc: Svc, link: str) -> str:
    """The address the link seals; a typed page refusal for an expired or altered link."""
    try:
        return keys(request).customer_email(link, svc.clock.now())
    except LinkRefused as exc:
        if exc.problem is LinkProblem.EXPIRED:
            raise PageRefused(410, tr(request, "Link expired"), tr(
                request, "This link is too old. Ask for a new one on the \u201cmanage my agreements\u201d page "
                "(/my). Nothing was changed.")) from None
        raise PageRefused(404, tr(request, "Link not valid"), tr(
            request, "This link is not one we sent, or it was changed. Ask for a new one on the "
            "\u201cmanage my agreements\u201d page (/my). Nothing was changed.")) from None


def default_period(now: datetime) -> tuple[date, date]:
    """The last 30 local days, today included."""
    today = now.astimezone(LOCAL_ZONE).date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_ZONE).astimezone(UTC)


def _window(request: Request, first: date, last: date, now: datetime) -> tuple[datetime, datetime]:
    """[first 00:00, the day after last 00:00) local, cut at the last whole 15 minutes before now."""
    if last < first:
        raise PageRefused(422, tr(request, "Check the dates"), tr(
            request, "The last day (%(to)s) is before the first day (%(from)s). Nothing was downloaded.",
            to=last.isoformat(), **{"from": first.isoformat()}))
    if (last - first).days + 1 > MAX_DAYS:
        raise PageRefused(422, tr(request, "Check the dates"), tr(
            request, "From %(from)s to %(to)s is %(days)s days; at most %(limit)s days can be downloaded at once.",
            to=last.isoformat(), days=(last - first).days + 1, limit=MAX_DAYS, **{"from": first.isoformat()}))
    unix = int(now.timestamp())
    end = min(_midnight(last + timedelta(days=1)), datetime.fromtimestamp(unix - unix % INTERVAL_S, UTC))
    return _midnight(first), max(end, _midnight(first))


async def _csv(rows: AsyncIterator[StoredRead]) -> AsyncIterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    async for r in rows:
        start = r.interval_start
        writer.writerow([start.astimezone(LOCAL_ZONE).isoformat(),
                         (start + timedelta(seconds=r.length_s)).astimezone(LOCAL_ZONE).isoformat(),
                         start.astimezone(UTC).isoformat(), r.channel,
                         "" if r.quality == "missing" else r.value_wh, "Wh", r.quality])
        count += 1
        if count % 2000 == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


@router.get("/my/{link}/premises/{esi_id}/usage")
async def download(*, request: Request, link: str, esi_id: str, svc: Svc,
                   first: Annotated[date | None, Query(alias="from")] = None,
                   last: Annotated[date | None, Query(alias="to")] = None,
                   file_format: Annotated[str, Query(alias="format", pattern="^(xml|csv)$")] = "xml") -> Response:
    """The premise's usage from `from` to `to` (local days, both included) as Green Button XML or CSV."""
    email = customer_email(request, svc, link)
    if esi_id not in {p.esi_id for p in await svc.store.premises_of_customer(email)}:
        raise PageRefused(404, tr(request, "No such premise"), tr(
            request, "ESI ID %(esi_id)s is not a premise of yours on record. Nothing was downloaded.",
            esi_id=esi_id[:32]))
    now = svc.clock.now()
    default_first, default_last = default_period(now)
    first, last = first or default_first, last or default_last
    start, end = _window(request, first, last, now)
    rows = stored_rows(svc.store, [esi_id], start, end)
    name = f"usage-{esi_id}-{first:%Y%m%d}-{last:%Y%m%d}"
    if file_format == "csv":
        return StreamingResponse(_csv(rows), media_type="text/csv; charset=utf-8; header=present", headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"', "X-Time-Zone": "America/Chicago"})
    base = svc.config.server.public_url.rstrip("/") + "/espi/1_1/resource"
    # Download My Data is a file, not a REST resource: its hrefs name the customer by a stable,
    # opaque id (a hash of the address), not by the link, which is a secret.
    customer = uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email.lower()}").hex[:16]
    links = FeedLinks(base, f"{base}/RetailCustomer/{customer}/UsagePoint",
                      f"{base}/Batch/RetailCustomer/{customer}/UsagePoint/{esi_id}",
                      f"Green Button Download My Data: ESI ID {esi_id}, {first.isoformat()} to {last.isoformat()}")
    return StreamingResponse(espi_feed(rows, links=links, updated=now, usage_points=[esi_id]),
                             media_type=CONTENT_TYPE,
                             headers={"Content-Disposition": f'attachment; filename="{name}.xml"'})
