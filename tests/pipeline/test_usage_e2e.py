"""Energy Data end to end over real HTTP: invitations validated field by field, the consent page
saying which data, which period and how often, ingestion from the simulated field through the
simulated route (gaps refetched after a dark meter, re-sent reads stored once), the usage API as
JSON and CSV with keyset pages, and the refusals: a foreign party, a period or interval outside
the agreement, an ended agreement; a route without the read operation named in the run's errors."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from sandbox.simfield import SimPremise, build_field, premises, premises_csv
from sandbox.simulated_route import SimulatedRoute
from simulators.clock import VirtualClock
from tests.gateway.conftest import (  # the PostgreSQL fixtures, for this module's tests on both stores
    Gateway,
    gateway_config,
    open_test_store,
    start_server,
    stop_server,
)
from tests.pipeline.conftest import CUSTOMER
from tests.pipeline.test_han_inventory import LegacyRoute

CENTRAL = ZoneInfo("America/Chicago")


@dataclass
class Field:
    gw: Gateway
    vclock: VirtualClock
    field: Any
    items: dict[str, SimPremise]  # by TDSP
    route: SimulatedRoute

    def advance(self, delta: timedelta) -> None:
        """Gateway and field time move together."""
        self.gw.clock.advance(delta)
        self.vclock.advance(delta.total_seconds())

    def esi(self, tdsp: str) -> str:
        return self.items[tdsp].esi_id

    def meter_no(self, tdsp: str) -> str:
        return self.items[tdsp].meter_number

    async def invite(self, token: str, tdsp: str, data: dict[str, Any] | None, months: int = 1,
                     kind: str = "energy_data") -> httpx.Response:
        body: dict[str, Any] = {"kind": kind, "premises": [{"esi_id": self.esi(tdsp),
                                                              "meter_number": self.meter_no(tdsp)}],
                                "customer_email": CUSTOMER, "duration_months": months}
        if data is not None:
            body["data"] = data
        return await self.gw.client.post("/v1/agreements", headers=self.gw.auth(token), json=body)

    async def one_day_accepted(self, token: str, tdsp: str, interval: str) -> None:
        """A one-time agreement over the day before yesterday at the TDSP's premise, accepted."""
        now = self.gw.clock.now()
        r = await self.invite(token, tdsp, {"mode": "one_time", "interval": interval,
                                            "from": _midnight(now, -2).isoformat(),
                                            "to": _midnight(now, -1).isoformat()})
        assert r.status_code == 201, r.text
        assert (await self.gw.consent(CUSTOMER)).status_code == 200

    async def ingest(self) -> dict[str, Any]:
        r = await self.gw.client.post("/v1/usage-ingestion-runs", headers=self.gw.op)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def usage(self, token: str, tdsp: str, start: datetime, end: datetime, interval: str = "15min",
                    **extra: Any) -> httpx.Response:
        return await self.gw.client.get(f"/v1/premises/{self.esi(tdsp)}/usage", headers={
            **self.gw.auth(token), **extra.pop("headers", {})}, params={
            "from": start.isoformat(), "to": end.isoformat(), "interval": interval, **extra})


@contextlib.asynccontextmanager
async def running_field(data_dir: Path, storage_url: str | None = None, *,
                        start: datetime | None = None, wrap: Callable[[SimulatedRoute], Any] | None = None,
                        **sections: Any) -> AsyncIterator[Field]:
    """`start`: both clocks start there (the gateway's jumps forward; the field is built there).
    `wrap`: the route the gateway is given in place of the simulated route (AEP Texas North's
    premises aside). `sections`: more of the gateway's config (e.g. `usage={...}`)."""
    config = gateway_config(data_dir, **({"storage": {"url": storage_url}} if storage_url else {}), **sections)
    config.data_dir.mkdir(parents=True)
    store = await open_test_store(config)
    clock = ManualClock()
    if start is not None:
        clock.advance(start - clock.now())
    _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
    vclock = VirtualClock(start=clock.now().timestamp(), seed=3)
    items = premises(1)  # one premise per TDSP
    field, _devices = build_field(vclock, items)
    route = SimulatedRoute(field, now=time.time)
    by_tdsp = {p.tdsp: p for p in items}
    # AEP Texas North's premises go through a route written before the read operation existed.
    routes = RouteSet(wrap(route) if wrap else route,
                      {by_tdsp["aep_north"].esi_id[:7]: LegacyRoute(route)})  # type: ignore[dict-item]
    app = create_app(config, store=store, clock=clock, run_timers=False, routes=routes)
    server, task, port = await start_server(app)
    base_url = f"http://127.0.0.1:{port}"
    config.server.public_url = base_url
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            gw = Gateway(base_url, client, store, clock, config, operator_token)
            await gw.load_premises(premises_csv(items, CUSTOMER))
            yield Field(gw, vclock, field, by_tdsp, route)
    finally:
        await stop_server(server, task)
        await store.close()


def _midnight(moment: datetime, days: int = 0) -> datetime:
    local = moment.astimezone(CENTRAL).date() + timedelta(days=days)
    return datetime(local.year, local.month, local.day, tzinfo=CENTRAL)


def _errors(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {e["field"]: e["code"] for e in r.json()["errors"]}


async def _all_pages(f: Field, token: str, tdsp: str, start: datetime, end: datetime, *, interval: str,
                     limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        r = await f.usage(token, tdsp, start, end, interval, limit=limit, cursor=cursor)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        if body["next_cursor"] is None:
            return items
        cursor = body["next_cursor"]


async def test_invitations_are_validated_field_by_field(tmp_path: Path) -> None:
    async with running_field(tmp_path / "d") as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        now = f.gw.clock.now()
        old = _midnight(now, -14 * 31)
        assert _errors(await f.invite(token, "oncor", None)) == {"data": "data_required"}
        assert _errors(await f.invite(token, "oncor", {"mode": "continuous", "interval": "daily"},
                                      kind="in_home_device")) == {"data": "data_not_allowed"}
        assert _errors(await f.invite(token, "oncor", {
            "mode": "one_time", "interval": "15min", "from": old.isoformat(),
            "to": _midnight(now, 1).isoformat()})) == {"data.from": "period_too_old", "data.to": "period_not_past"}
        r = await f.invite(token, "oncor", {"mode": "one_time", "interval": "15min",
                                            "from": (_midnight(now, -3) + timedelta(minutes=7)).isoformat()})
        assert _errors(r) == {"data.from": "not_on_interval_boundary", "data.to": "period_required"}
        assert r.json()["errors"][0]["limit"] == 900
        assert _errors(await f.invite(token, "oncor", {
            "mode": "continuous", "interval": "15min", "to": now.isoformat()})) == {"data.to": "period_not_allowed"}
        assert _errors(await f.invite(token, "oncor", {"mode": "hourly", "interval": "15min"})) == {
            "data.mode": "enum"}
        assert _errors(await f.invite(token, "oncor", {"mode": "one_time", "interval": "15min",
                                                       "from": "2026-01-01T00:00:00"})) == {
            "data.from": "timezone_aware"}
        assert _errors(await f.invite(token, "oncor", {"mode": "continuous", "interval": "daily"},
                                      months=2)) == {"duration_months": "duration_not_allowed"}
        # A premise whose meter has no HAN on record may still share its usage.
        r = await f.invite(token, "oncor", {"mode": "continuous", "interval": "daily"}, months=12)
        assert r.status_code == 201, r.text
        assert r.json()["data"] == {"mode": "continuous", "interval": "daily", "from": None, "to": None}
        agreement = r.json()["id"]
        # Re-sent, accepted and renewed like the other kinds, through the same pages.
        r = await f.gw.client.post(f"/v1/agreements/{agreement}/resend", headers=f.gw.auth(token))
        assert r.status_code == 200 and r.json()["resend_count"] == 1, r.text
        link = f.gw.link(f.gw.mails_to(CUSTOMER)[-1], "/consent/")
        page = (await f.gw.client.get(link)).text
        assert "daily and monthly kWh used" in page and "from the day you accept, for 12 months" in page
        assert "How often: continuously" in page and "stops the moment the agreement ends" in page
        assert (await f.gw.client.post(link, data={"decision": "accept"})).status_code == 200
        r = await f.gw.client.post(f"/v1/agreements/{agreement}/renew", headers=f.gw.auth(token),
                                   json={"duration_months": 24})
        assert _errors(r) == {"duration_months": "duration_not_allowed"}
        r = await f.gw.client.post(f"/v1/agreements/{agreement}/renew", headers=f.gw.auth(token),
                                   json={"duration_months": 6})
        assert r.status_code == 200 and r.json()["renewal_pending"], r.text
        assert "renew" in f.gw.mails_to(CUSTOMER)[-1]["Subject"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None: the test gateway's SQLite file; else a fresh PostgreSQL database at head."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("migrated_pg_url")
    return url


async def test_one_time_and_continuous_data_through_the_api(tmp_path: Path, store_url: str | None) -> None:
    async with running_field(tmp_path / "d", store_url) as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        _, other = await f.gw.new_party("Snoop", "987654321")
        now = f.gw.clock.now()
        start, end = _midnight(now, -3), _midnight(now, -1)

        # One-time, 15-minute data for two past days at Oncor's premise.
        r = await f.invite(token, "oncor", {"mode": "one_time", "interval": "15min",
                                            "from": start.isoformat(), "to": end.isoformat()})
        assert r.status_code == 201, r.text
        one_time = r.json()["id"]
        mail = f.gw.body(f.gw.mails_to(CUSTOMER)[-1])
        assert "15-minute interval, daily and monthly" in mail and f"{start:%Y-%m-%d %H:%M}" in mail
        link = f.gw.link(f.gw.mails_to(CUSTOMER)[-1], "/consent/")
        page = (await f.gw.client.get(link)).text
        assert "Which data" in page and "a one-time copy" in page and f"{start:%B %d, %Y %H:%M}" in page
        assert "How often: once" in page
        assert (await f.gw.client.post(link, data={"decision": "accept"})).status_code == 200

        # Before ingestion the period is covered but nothing is stored: every interval missing.
        r = await f.usage(token, "oncor", start, end, "daily")
        assert r.status_code == 200, r.text
        assert [(i["quality"], i["value_wh"]) for i in r.json()["items"]] == [("missing", None)] * 2

        run = await f.ingest()
        assert run["agreements"] == 1 and run["errors"] == [] and run["reads"] >= 2 * 96, run
        assert (await f.ingest())["reads"] == 0  # nothing missing: nothing fetched again

        # Every 15-minute interval of the two days, across keyset pages, once each.
        items = await _all_pages(f, token, "oncor", start, end, interval="15min", limit=37)
        consumption = [i for i in items if i["channel"] == "consumption"]
        starts = [datetime.fromisoformat(i["start"]) for i in consumption]
        expected = int((end - start).total_seconds()) // 900
        assert len(starts) == len(set(starts)) == expected
        assert starts[0] == start and starts[-1] == end - timedelta(minutes=15)
        assert consumption[0]["start"].endswith(("-06:00", "-05:00"))  # local time, with its offset
        assert all(i["value_wh"] > 0 and i["quality"] in ("actual", "estimated") for i in consumption)

        # Daily sums are the sums of the intervals, and complete.
        r = await f.usage(token, "oncor", start, end, "daily")
        days = r.json()["items"]
        assert r.json()["time_zone"] == "America/Chicago" and r.json()["unit"] == "Wh"
        assert [d["start"] for d in days if d["channel"] == "consumption"] == [
            start.isoformat(), _midnight(now, -2).isoformat()]
        first_day = [i["value_wh"] for i in consumption if datetime.fromisoformat(i["start"]) < _midnight(now, -2)]
        day_one = next(d for d in days if d["channel"] == "consumption")
        assert day_one["value_wh"] == sum(first_day) and day_one["intervals"] == day_one["expected_intervals"]
        assert day_one["quality"] in ("actual", "estimated")

        # CSV: units, quality and the time zone stated; the next page in a Link header.
        r = await f.usage(token, "oncor", start, end, "15min", limit=50, headers={"Accept": "text/csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
        assert r.headers["x-time-zone"] == "America/Chicago" and 'rel="next"' in r.headers["link"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 50 and rows[0]["unit"] == "Wh" and rows[0]["quality"] in ("actual", "estimated")
        assert datetime.fromisoformat(rows[0]["start_utc"]) == start and rows[0]["start_local"] == start.isoformat()

        # Refusals: a foreign party sees nothing; outside the period; a finer interval than granted.
        r = await f.usage(other, "oncor", start, end)
        assert r.status_code == 404 and r.json()["code"] == "unknown_premise", r.text
        r = await f.usage(token, "oncor", start - timedelta(days=1), end)
        assert r.status_code == 403 and r.json()["code"] == "period_not_covered", r.text
        r = await f.usage(token, "oncor", start, end + timedelta(days=1), "daily")
        assert r.status_code == 403 and r.json()["code"] == "period_not_covered", r.text
        r = await f.usage(token, "oncor", start + timedelta(minutes=5), end)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "from", r.text
        audit = await f.gw.client.get("/v1/audit", headers=f.gw.auth(token), params={"action": "read_usage",
                                                                                      "allowed": "false"})
        assert "period_not_covered" in {e["reason"] for e in audit.json()["items"]}

        # Continuous, daily data at CenterPoint's premise: from acceptance on, delivered as it comes.
        r = await f.invite(token, "centerpoint", {"mode": "continuous", "interval": "daily"}, months=1)
        assert r.status_code == 201, r.text
        continuous = r.json()["id"]
        assert (await f.gw.consent(CUSTOMER)).status_code == 200
        accepted = f.gw.clock.now()
        f.advance(timedelta(days=1))
        f.field.meter(f.esi("centerpoint")).set_reachable(False)  # the meter goes dark for a day
        f.advance(timedelta(days=1))
        run = await f.ingest()
        assert [e["esi_id"] for e in run["errors"]] == [f.esi("centerpoint")], run
        assert "unreachable" in run["errors"][0]["reason"]
        f.field.meter(f.esi("centerpoint")).set_reachable(True)
        f.advance(timedelta(hours=2))
        run = await f.ingest()
        assert run["errors"] == [] and run["reads"] > 0, run  # the gap is refetched
        day = _midnight(accepted, 1)
        r = await f.usage(token, "centerpoint", day, day + timedelta(days=1), "daily")
        assert r.status_code == 200, r.text
        (consumed,) = [d for d in r.json()["items"] if d["channel"] == "consumption"]
        assert consumed["quality"] != "missing" and consumed["intervals"] == consumed["expected_intervals"]
        r = await f.usage(token, "centerpoint", day, day + timedelta(days=1), "15min")
        assert r.status_code == 403 and r.json()["code"] == "interval_not_granted", r.text
        r = await f.usage(token, "centerpoint", _midnight(accepted), day, "daily")  # before acceptance
        assert r.status_code == 403 and r.json()["code"] == "period_not_covered", r.text

        # Ended: the party's reads stop at once (404, as for a premise it never had).
        r = await f.gw.client.post(f"/v1/agreements/{continuous}/terminate", headers=f.gw.auth(token))
        assert r.status_code == 200, r.text
        r = await f.usage(token, "centerpoint", day, day + timedelta(days=1), "daily")
        assert r.status_code == 404 and r.json()["code"] == "unknown_premise", r.text
        # The operator still reads what is stored; the one-time agreement is untouched.
        r = await f.usage(f.gw.operator_token, "centerpoint", day, day + timedelta(days=1), "daily")
        assert r.status_code == 200 and r.json()["items"][0]["value_wh"] > 0, r.text
        assert (await f.usage(token, "oncor", start, end, "monthly")).status_code == 422  # not a month boundary
        assert one_time


async def test_a_route_without_the_read_operation_is_named(tmp_path: Path) -> None:
    async with running_field(tmp_path / "d") as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        await f.one_day_accepted(token, "aep_north", "daily")
        run = await f.ingest()
        (error,) = run["errors"]
        assert error["esi_id"] == f.esi("aep_north") and error["route"] == "legacy-headend"
        assert "not supported" in error["reason"] and "MultiSpeak" in error["reason"]
        assert run["reads"] == 0


async def test_a_load_control_event_shows_in_the_premise_usage(tmp_path: Path) -> None:
    """The issue's proof, through the gateway: a party with a load-control agreement and a
    continuous Energy Data agreement at Oncor's premise (a thermostat on its HAN) sends a 2-hour,
    2 °C set-back on a July afternoon; the premise's 15-minute data, read through the usage API,
    shows the event window below the same window the day before and the hour after above it."""
    july = datetime(datetime.now(CENTRAL).year + 1, 7, 14, 6, tzinfo=CENTRAL)  # the air conditioner's season
    async with running_field(tmp_path / "d", start=july) as f:
        _, token = await f.gw.new_party("Cool", "123456789")
        esi = f.esi("oncor")
        await f.gw.active_agreement(token, esi, f.meter_no("oncor"), CUSTOMER, scopes=["load_control"])
        r = await f.invite(token, "oncor", {"mode": "continuous", "interval": "15min"}, months=1)
        assert r.status_code == 201, r.text
        assert (await f.gw.consent(CUSTOMER)).status_code == 200
        f.advance(datetime(july.year, 7, 15, 15, tzinfo=CENTRAL) - f.gw.clock.now())
        handed = f.route.handed_to_meter
        r = await f.gw.client.post("/v1/han-requests", headers=f.gw.auth(token), json={
            "kind": "load_control", "esi_ids": [esi], "device_classes": 1, "criticality": 3,
            "duration_minutes": 120, "cooling_offset_c": "2.0"})
        assert r.status_code == 202, r.text
        for _ in range(300):  # the dispatcher hands it to the route (wall time)
            if f.route.handed_to_meter > handed:
                break
            await asyncio.sleep(0.05)
        f.advance(datetime(july.year, 7, 16, tzinfo=CENTRAL) - f.gw.clock.now())
        (window,) = f.field.meter(esi).curtailments()  # when the thermostat ran it, by its load
        start = window.start
        assert 7190 <= window.end - window.start <= 7210  # the 2 hours, as the device ran them
        run = await f.ingest()
        assert run["errors"] == [], run

        async def wh(a: float, b: float) -> int:
            first, last = datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)
            items = await _all_pages(f, token, "oncor", first, last, interval="15min", limit=1000)
            return sum(i["value_wh"] for i in items if i["channel"] == "consumption")

        a = (int(start) // 900 + 1) * 900  # whole intervals inside the event
        day = 86_400
        event, before = await wh(a, a + 6300), await wh(a - day, a - day + 6300)
        b = (int(window.end) // 900 + 1) * 900
        after, before_after = await wh(b, b + 2700), await wh(b - day, b - day + 2700)
        assert event < 0.85 * before, (event, before)
        assert after > 1.1 * before_after, (after, before_after)


class HeldHeadEnd:
    """The simulated route, whose interval reads wait until the test lets them go: a head-end
    that is slow to answer, so that an ingestion pass is still running when another is asked for."""

    def __init__(self, inner: SimulatedRoute) -> None:
        self.inner = inner
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read_usage(self, esi_id: str, start: int, end: int) -> Any:
        self.asked.set()
        await self.answer.wait()
        return await self.inner.read_usage(esi_id, start, end)


async def test_one_ingestion_pass_at_a_time_across_instances(tmp_path: Path, migrated_pg_url: str) -> None:
    """Two gateway instances on one PostgreSQL, over real HTTP: while the second instance's pass
    waits on its head-end, the first instance's operator run is refused (409 ingestion_running) and
    so is a second run on the same instance; once the pass is done, a run finds nothing left to fetch
    — the head-ends are never asked for the same gaps twice."""
    async with running_field(tmp_path / "a", migrated_pg_url) as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        await f.one_day_accepted(token, "oncor", "15min")

        # The second instance: its own process state, the same database, a head-end that waits.
        config = gateway_config(tmp_path / "b", storage={"url": migrated_pg_url})
        config.data_dir.mkdir(parents=True)
        store = await open_test_store(config)
        field_b, _ = build_field(VirtualClock(start=f.gw.clock.now().timestamp(), seed=3), list(f.items.values()))
        held = HeldHeadEnd(SimulatedRoute(field_b, now=time.time))
        app = create_app(config, store=store, clock=f.gw.clock, run_timers=False,
                         routes=RouteSet(held))  # type: ignore[arg-type]
        server, task, port = await start_server(app)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as other:
                running = asyncio.create_task(other.post("/v1/usage-ingestion-runs", headers=f.gw.op))
                await asyncio.wait_for(held.asked.wait(), 10)

                refused = await f.gw.client.post("/v1/usage-ingestion-runs", headers=f.gw.op)
                assert refused.status_code == 409, refused.text
                assert refused.json()["code"] == "ingestion_running", refused.text
                again = await other.post("/v1/usage-ingestion-runs", headers=f.gw.op)
                assert again.status_code == 409 and again.json()["code"] == "ingestion_running"

                held.answer.set()
                done = await running
                assert done.status_code == 200 and done.json()["reads"] >= 96, done.text
        finally:
            await stop_server(server, task)
            await store.close()
        after = await f.ingest()
        assert after["reads"] == 0 and after["errors"] == [], after  # nothing fetched twice


class CountingHeadEnd:
    """The simulated route, counting the interval reads in flight at once (each takes 50 ms)."""

    def __init__(self, inner: SimulatedRoute) -> None:
        self.inner = inner
        self.in_flight = 0
        self.most = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read_usage(self, esi_id: str, start: int, end: int) -> Any:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            return await self.inner.read_usage(esi_id, start, end)
        finally:
            self.in_flight -= 1


async def test_a_pass_reads_several_premises_at_once(tmp_path: Path) -> None:
    """`[usage] ingest_concurrency` premises are read at once, never more; every premise's data
    arrives, and a second pass finds nothing to fetch."""
    counted: list[CountingHeadEnd] = []

    def wrap(route: SimulatedRoute) -> CountingHeadEnd:
        counted.append(CountingHeadEnd(route))
        return counted[0]

    async with running_field(tmp_path / "d", wrap=wrap, usage={"ingest_concurrency": 2}) as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        now = f.gw.clock.now()
        tdsps = ["oncor", "centerpoint", "tnmp", "aep_central"]
        r = await f.gw.client.post("/v1/agreements", headers=f.gw.auth(token), json={
            "kind": "energy_data", "customer_email": CUSTOMER, "duration_months": 1,
            "premises": [{"esi_id": f.esi(t), "meter_number": f.meter_no(t)} for t in tdsps],
            "data": {"mode": "one_time", "interval": "15min", "from": _midnight(now, -2).isoformat(),
                     "to": _midnight(now, -1).isoformat()}})
        assert r.status_code == 201, r.text
        assert (await f.gw.consent(CUSTOMER)).status_code == 200
        run = await f.ingest()
        assert run["premises"] == 4 and run["errors"] == [] and run["reads"] >= 4 * 96, run
        assert counted[0].most == 2  # two at once, as configured: not one after another, not all four
        for t in tdsps:
            items = await _all_pages(f, token, t, _midnight(now, -2), _midnight(now, -1), interval="daily",
                                     limit=10)
            days = [i for i in items if i["channel"] == "consumption"]
            assert days and all(d["quality"] in ("actual", "estimated") for d in days), (t, items)
        assert (await f.ingest())["reads"] == 0
