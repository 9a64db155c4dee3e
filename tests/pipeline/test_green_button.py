"""Green Button (ESPI) over real HTTP, from the outside: usage ingested from the simulated field
through the simulated route, then read back as Connect My Data feeds (the third party's token, its
own Energy Data agreement as the subscription) and as Download My Data files (the customer's page
link). Every document is validated against our strict ESPI subset schema (always) and parsed with
greenbutton-objects, an independent parser, whose intervals must equal the store's: count, UTC
starts, 900 s, Wh. The DST days' blocks hold 92 and 100 intervals. Refusals show nothing: another
party's subscription (404, as an unknown id), a window outside the period, an ended agreement.

The published GBA schema (espi.xsd + atom.xsd, not redistributable here) is checked too when
HANGW_ESPI_XSD_DIR names a folder holding both."""

from __future__ import annotations

import csv
import io
import os
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import xmlschema
from greenbutton_objects.parse import parse_feed

from tests.pipeline.conftest import CUSTOMER
from tests.pipeline.test_usage_e2e import Field, running_field, store_url  # noqa: F401 (a fixture)

CENTRAL = ZoneInfo("America/Chicago")
NS = {"a": "http://www.w3.org/2005/Atom", "e": "http://naesb.org/espi"}
SUBSET = Path(__file__).parents[2] / "gateway" / "greenbutton" / "schema" / "atom-subset.xsd"
ESPI_XSD_DIR = os.environ.get("HANGW_ESPI_XSD_DIR", "")
CMD = "/espi/1_1/resource"


def _sunday(year: int, month: int, nth: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (nth - 1))


def _latest_past(month: int, nth: int) -> date:
    """The latest `nth` Sunday of `month` (a DST change in the US) at least 3 days before today:
    one-time agreements need a past period, at most about 24 months old."""
    today = datetime.now(CENTRAL).date()
    year = today.year
    while _sunday(year, month, nth) > today - timedelta(days=3):
        year -= 1
    return _sunday(year, month, nth)


FALL = _latest_past(11, 1)  # 25 hours: 100 intervals
SPRING = _latest_past(3, 2)  # 23 hours: 92 intervals


def day_id(day: date, shift: int = 0) -> str:
    return f"{day + timedelta(days=shift):%Y%m%d}"


def midnight(day: date, shift: int = 0) -> datetime:
    d = day + timedelta(days=shift)
    return datetime(d.year, d.month, d.day, tzinfo=CENTRAL)


@cache
def subset_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SUBSET))


@cache
def published_schema() -> xmlschema.XMLSchema:
    # espi.xsd imports atom.xsd from its folder (and xml.xsd by URL: xmlschema has its own copy).
    return xmlschema.XMLSchema(str(Path(ESPI_XSD_DIR) / "espi.xsd"))


def validate(body: bytes, *, published: bool = False) -> None:
    subset_schema().validate(io.BytesIO(body))
    if published:
        published_schema().validate(io.BytesIO(body))


async def one_time(f: Field, token: str, tdsp: str, start: datetime, end: datetime) -> int:
    r = await f.invite(token, tdsp, {"mode": "one_time", "interval": "15min", "from": start.isoformat(),
                                     "to": end.isoformat()})
    assert r.status_code == 201, r.text
    assert (await f.gw.consent(CUSTOMER)).status_code == 200
    agreement: int = r.json()["id"]
    return agreement


async def stored(f: Field, esi_id: str, start: datetime, end: datetime) -> dict[str, list[Any]]:
    """The store's non-missing intervals per channel (what a feed must carry)."""
    out: dict[str, list[Any]] = {}
    for channel in ("consumption", "generation"):
        rows = await f.gw.store.usage_channel_page(esi_id, channel, start, end, limit=100_000)
        out[channel] = [r for r in rows if r.quality != "missing"]
    return out


def parsed(body: bytes) -> dict[str, dict[str, list[tuple[datetime, timedelta, float, list[int]]]]]:
    """greenbutton-objects' reading of a feed: per UsagePoint title, per flow direction."""
    out: dict[str, dict[str, list[tuple[datetime, timedelta, float, list[int]]]]] = {}
    for up in parse_feed(io.BytesIO(body)):
        readings = out.setdefault(up.title, {})
        for mr in up.meterReadings:
            assert mr.readingType.uom.name == "wattHours" and mr.readingType.intervalLength == 900
            readings[mr.readingType.flowDirection.name] = [
                (ir.timePeriod.start, ir.timePeriod.duration, ir.value, [q.quality.value for q in ir.readingQualities])
                for ir in mr.intervalReadings]
    return out


def assert_equal_to_store(body: bytes, esi_id: str, rows: dict[str, list[Any]]) -> None:
    feed = parsed(body)[f"ESI ID {esi_id}"]
    assert set(feed) == {"forward"} | ({"reverse"} if rows["generation"] else set())
    for direction, channel in (("forward", "consumption"), ("reverse", "generation")):
        if not rows[channel]:
            continue
        got = feed[direction]
        assert len(got) == len(rows[channel])
        assert [g[0] for g in got] == [r.interval_start for r in rows[channel]]  # aware UTC starts
        assert all(g[0].tzinfo is not None and g[0].utcoffset() == timedelta(0) for g in got)
        assert {g[1] for g in got} == {timedelta(seconds=900)}
        assert [g[2] for g in got] == [r.value_wh for r in rows[channel]]
        assert [g[3] for g in got] == [[8] if r.quality == "estimated" else [] for r in rows[channel]]


def blocks(body: bytes) -> dict[str, tuple[int, int, int]]:
    """Per IntervalBlock self href's day id: (interval start, duration, readings)."""
    out = {}
    for entry in ET.fromstring(body).iter(f"{{{NS['a']}}}entry"):
        block = entry.find("a:content/e:IntervalBlock", NS)
        if block is None:
            continue
        href = next(link.get("href") for link in entry.findall("a:link", NS) if link.get("rel") == "self")
        assert href is not None
        out[href.rsplit("/", 1)[1]] = (int(block.findtext("e:interval/e:start", "", NS)),
                                       int(block.findtext("e:interval/e:duration", "", NS)),
                                       len(block.findall("e:IntervalReading", NS)))
    return out


async def get(f: Field, token: str, path: str, **params: str) -> httpx.Response:
    return await f.gw.client.get(CMD + path, headers=f.gw.auth(token), params=params)


def problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and r.json()["code"] == code, r.text
    assert "IntervalReading" not in r.text


async def test_connect_my_data_feeds_and_refusals(tmp_path: Path, store_url: str | None) -> None:  # noqa: F811
    """On SQLite and on PostgreSQL (the store's keyset reads in the writer's order)."""
    async with running_field(tmp_path / "d", store_url) as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        _, other = await f.gw.new_party("Snoop", "987654321")
        esi = f.esi("oncor")
        fall = await one_time(f, token, "oncor", midnight(FALL, -1), midnight(FALL, 1))
        spring = await one_time(f, token, "tnmp", midnight(SPRING, -1), midnight(SPRING, 1))  # one per premise
        run = await f.ingest()
        assert run["errors"] == [] and run["reads"] >= 4 * 96, run

        # The whole subscription: valid, parsed back equal to the store, one block per local day.
        r = await get(f, token, f"/Batch/Subscription/{fall}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/atom+xml")
        validate(r.content)
        rows = await stored(f, esi, midnight(FALL, -1), midnight(FALL, 1))
        assert len(rows["consumption"]) >= 190
        assert_equal_to_store(r.content, esi, rows)
        days = blocks(r.content)
        assert days[day_id(FALL)][1:] == (90_000, sum(1 for x in rows["consumption"]
                                                    if x.interval_start >= midnight(FALL)))
        assert days[day_id(FALL)][2] == 100 or any(x.quality == "missing" for x in rows["consumption"])
        assert days[day_id(FALL, -1)][:2] == (int(midnight(FALL, -1).timestamp()), 86_400)

        r = await get(f, token, f"/Batch/Subscription/{spring}")
        validate(r.content)
        spring_rows = await stored(f, f.esi("tnmp"), midnight(SPRING, -1), midnight(SPRING, 1))
        assert_equal_to_store(r.content, f.esi("tnmp"), spring_rows)
        assert blocks(r.content)[day_id(SPRING)][1:] == (82_800, 92)
        assert blocks(r.content)[day_id(SPRING)][0] == int(midnight(SPRING).timestamp())  # 06:00Z (CST)

        # published-min/max: a window inside the period; only its intervals.
        a, b = midnight(FALL, -1) + timedelta(hours=6), midnight(FALL, -1) + timedelta(hours=8)
        r = await get(f, token, f"/Batch/Subscription/{fall}", **{"published-min": a.isoformat(),
                                                                  "published-max": b.isoformat()})
        validate(r.content)
        assert_equal_to_store(r.content, esi, await stored(f, esi, a, b))

        # Resource level: the same resources one by one, each valid.
        r = await get(f, token, f"/Subscription/{fall}/UsagePoint")
        validate(r.content)
        assert [e.findtext("a:title", "", NS) for e in ET.fromstring(r.content).findall("a:entry", NS)] == [
            f"ESI ID {esi}"]
        for path in (f"/Subscription/{fall}/UsagePoint/{esi}", f"/Subscription/{fall}/UsagePoint/{esi}/MeterReading",
                     f"/Subscription/{fall}/UsagePoint/{esi}/MeterReading/1",
                     f"/Subscription/{fall}/UsagePoint/{esi}/MeterReading/1/IntervalBlock/{day_id(FALL)}",
                     "/ReadingType/1", "/LocalTimeParameters/1"):
            r = await get(f, token, path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml"), (path, r.text)
            validate(r.content)
        assert ET.fromstring(r.content).findtext("a:content/e:LocalTimeParameters/e:tzOffset", "", NS) == "-21600"
        r = await get(f, token, f"/Subscription/{fall}/UsagePoint/{esi}/MeterReading/1/IntervalBlock")
        validate(r.content)
        assert set(blocks(r.content)) == {day_id(FALL, -1), day_id(FALL)}

        # Refusals, with nothing of the feed in them.
        unknown = await get(f, other, "/Batch/Subscription/999999")
        problem(unknown, 404, "unknown_agreement")
        foreign = await get(f, other, f"/Batch/Subscription/{fall}")
        problem(foreign, 404, "unknown_agreement")
        assert foreign.json()["detail"].replace(str(fall), "X") == unknown.json()["detail"].replace("999999", "X")
        problem(await get(f, other, f"/Subscription/{fall}/UsagePoint/{esi}/MeterReading/1/IntervalBlock"),
                404, "unknown_agreement")
        problem(await get(f, token, f"/Batch/Subscription/{fall}", **{
            "published-min": midnight(FALL, -2).isoformat()}), 403, "period_not_covered")
        day_after = f"/Subscription/{fall}/UsagePoint/{esi}/MeterReading/1/IntervalBlock/{day_id(FALL, 1)}"
        problem(await get(f, token, day_after),
                403, "period_not_covered")
        problem(await get(f, token, f"/Subscription/{fall}/UsagePoint/{f.esi('centerpoint')}"),
                404, "unknown_usage_point")
        audit = await f.gw.client.get("/v1/audit", headers=f.gw.auth(token), params={
            "action": "read_usage", "allowed": "false"})
        assert {(e["agreement_id"], e["reason"]) for e in audit.json()["items"]} >= {(fall, "period_not_covered")}
        off_boundary = (a + timedelta(minutes=5)).isoformat()
        r = await get(f, token, f"/Batch/Subscription/{fall}", **{"published-min": off_boundary})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "published-min", r.text
        r = await get(f, f.gw.operator_token, f"/Batch/Subscription/{fall}")
        assert r.status_code == 403, r.text

        # A continuous agreement: data from acceptance on; once ended, nothing at all.
        r = await f.invite(token, "centerpoint", {"mode": "continuous", "interval": "15min"}, months=1)
        assert r.status_code == 201, r.text
        continuous = r.json()["id"]
        assert (await f.gw.consent(CUSTOMER)).status_code == 200
        f.advance(timedelta(hours=5))
        assert (await f.ingest())["errors"] == []
        r = await get(f, token, f"/Batch/Subscription/{continuous}")
        validate(r.content)
        assert len(parsed(r.content)[f"ESI ID {f.esi('centerpoint')}"]["forward"]) >= 16
        r = await f.gw.client.post(f"/v1/agreements/{continuous}/terminate", headers=f.gw.auth(token))
        assert r.status_code == 200, r.text
        problem(await get(f, token, f"/Batch/Subscription/{continuous}"), 403, "agreement_not_in_force")
        problem(await get(f, token, f"/Subscription/{continuous}/UsagePoint"), 403, "agreement_not_in_force")


async def test_download_my_data_from_the_customer_page(tmp_path: Path) -> None:
    async with running_field(tmp_path / "d") as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        esi = f.esi("oncor")
        await one_time(f, token, "oncor", midnight(FALL, -1), midnight(FALL, 1))
        assert (await f.ingest())["errors"] == []
        link = f.gw.link(f.gw.mails_to(CUSTOMER)[-1], "/my/")
        page = await f.gw.client.get(link)
        assert page.status_code == 200 and f"Download my data for ESI ID {esi}" in page.text
        assert "Download Green Button file (XML)" in page.text and "Download spreadsheet (CSV)" in page.text
        page = await f.gw.client.get(link, headers={"Accept-Language": "es"})
        assert f"Descargar mis datos del ESI ID {esi}" in page.text and "Descargar hoja de cálculo (CSV)" in page.text

        period = {"from": str(FALL - timedelta(days=1)), "to": str(FALL)}
        r = await f.gw.client.get(f"{link}/premises/{esi}/usage", params={**period, "format": "xml"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml"), r.text
        assert "attachment" in r.headers["content-disposition"]
        validate(r.content)
        rows = await stored(f, esi, midnight(FALL, -1), midnight(FALL, 1))
        assert_equal_to_store(r.content, esi, rows)
        assert blocks(r.content)[day_id(FALL)][1] == 90_000

        r = await f.gw.client.get(f"{link}/premises/{esi}/usage", params={**period, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
        table = list(csv.DictReader(io.StringIO(r.text)))
        consumption = [t for t in table if t["channel"] == "consumption"]
        assert len(consumption) == len(rows["consumption"]) + sum(
            1 for x in await f.gw.store.usage_channel_page(esi, "consumption", midnight(FALL, -1),
                                                           midnight(FALL, 1)) if x.quality == "missing")
        assert [int(t["value"]) for t in consumption if t["value"]] == [x.value_wh for x in rows["consumption"]]
        assert consumption[0]["start_local"] == midnight(FALL, -1).isoformat() and consumption[0]["unit"] == "Wh"

        # The default period (the last 30 days) answers too: a valid file, maybe without readings.
        r = await f.gw.client.get(f"{link}/premises/{esi}/usage")
        assert r.status_code == 200, r.text
        validate(r.content)

        # Only the customer's premises; a bad period names its limit; a made-up link is refused.
        r = await f.gw.client.get(f"{link}/premises/10443720000000099/usage")
        assert r.status_code == 404 and "Nothing was downloaded" in r.text and "IntervalReading" not in r.text
        usage = f"{link}/premises/{esi}/usage"
        r = await f.gw.client.get(usage, params={"from": str(FALL - timedelta(days=800)), "to": str(FALL)})
        assert r.status_code == 422 and "at most 732 days" in r.text
        r = await f.gw.client.get(usage, params={"from": str(FALL + timedelta(days=1)), "to": str(FALL)})
        assert r.status_code == 422 and "before the first day" in r.text
        r = await f.gw.client.get(f"{link}x/premises/{esi}/usage", params=period)
        assert r.status_code == 404 and "IntervalReading" not in r.text


@pytest.mark.skipif(not ESPI_XSD_DIR, reason="HANGW_ESPI_XSD_DIR is not set: point it at a folder holding the "
                    "published GBA espi.xsd and atom.xsd (ESPI 4.0; fetched files are not kept in this repository)")
async def test_documents_validate_against_the_published_espi_schema(tmp_path: Path) -> None:
    for name in ("espi.xsd", "atom.xsd"):
        assert (Path(ESPI_XSD_DIR) / name).is_file(), f"{name} missing from HANGW_ESPI_XSD_DIR={ESPI_XSD_DIR}"
    async with running_field(tmp_path / "d") as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        esi = f.esi("oncor")
        spring = await one_time(f, token, "oncor", midnight(SPRING, -1), midnight(SPRING, 1))
        assert (await f.ingest())["errors"] == []
        paths = [f"/Batch/Subscription/{spring}", f"/Subscription/{spring}/UsagePoint",
                 f"/Subscription/{spring}/UsagePoint/{esi}", f"/Subscription/{spring}/UsagePoint/{esi}/MeterReading",
                 f"/Subscription/{spring}/UsagePoint/{esi}/MeterReading/1",
                 f"/Subscription/{spring}/UsagePoint/{esi}/MeterReading/1/IntervalBlock",
                 f"/Subscription/{spring}/UsagePoint/{esi}/MeterReading/1/IntervalBlock/{day_id(SPRING)}",
                 "/ReadingType/1", "/LocalTimeParameters/1"]
        for path in paths:
            r = await get(f, token, path)
            assert r.status_code == 200, (path, r.text)
            validate(r.content, published=True)
        link = f.gw.link(f.gw.mails_to(CUSTOMER)[-1], "/my/")
        r = await f.gw.client.get(f"{link}/premises/{esi}/usage",
                                  params={"from": str(SPRING - timedelta(days=1)), "to": str(SPRING)})
        validate(r.content, published=True)
        assert blocks(r.content)[day_id(SPRING)][1:] == (82_800, 92)
