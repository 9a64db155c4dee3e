"""Bulk usage reports over real HTTP, on SQLite and PostgreSQL: a report over the premises of an
agreement equals, premise by premise, the usage endpoint's CSV rows; only its party sees it; the
refusals are typed and immediate (a period outside the agreement, a foreign premise, ESPI not
supported yet); a worker stopped mid-report hands it back and another restarts it (progress seen
moving); the data of an agreement that ends during production stops at its end; the file is
deleted after its retention and the report says so."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from gateway.usage import UsageService
from gateway.usage_reports import ReportWorker
from sandbox.simfield import SimPremise, build_field, premises, premises_csv
from sandbox.simulated_route import SimulatedRoute
from simulators.clock import VirtualClock
from tests.gateway.conftest import Gateway, gateway_config, open_test_store, start_server, stop_server
from tests.pipeline.conftest import CUSTOMER
from tests.pipeline.test_events import _catalogue, _shape_differences
from tests.pipeline.test_green_button import ESPI_XSD_DIR, parsed, validate
from tests.pipeline.test_usage_e2e import _midnight, store_url

__all__ = ["store_url"]  # the fixture: SQLite, and a fresh PostgreSQL database at head

BOB = "bob@example.test"


@dataclass
class Field:
    gw: Gateway
    vclock: VirtualClock
    items: list[SimPremise]
    app: Any

    def advance(self, delta: timedelta) -> None:
        self.gw.clock.advance(delta)
        self.vclock.advance(delta.total_seconds())

    def worker(self, chunk: int = 1) -> ReportWorker:
        """A second worker instance on the same store and data directory (as another process)."""
        store = self.gw.store
        return ReportWorker(store, UsageService(store, None, self.gw.clock), self.gw.clock, self.gw.config.data_dir,
                            lease=timedelta(seconds=60), retention=timedelta(days=7), chunk_premises=chunk)

    async def agreement(self, token: str, data: dict[str, Any], esi_ids: list[str] | None = None,
                        email: str = CUSTOMER, months: int = 1) -> int:
        chosen = [p for p in self.items if esi_ids is None or p.esi_id in esi_ids]
        r = await self.gw.client.post("/v1/agreements", headers=self.gw.auth(token), json={
            "kind": "energy_data", "premises": [{"esi_id": p.esi_id, "meter_number": p.meter_number} for p in chosen],
            "customer_email": email, "duration_months": months, "data": data})
        assert r.status_code == 201, r.text
        assert (await self.gw.consent(email)).status_code == 200
        agreement_id: int = r.json()["id"]
        return agreement_id

    async def one_day_ingested(self, token: str, interval: str) -> tuple[int, datetime, datetime]:
        """A one-time agreement over the day before yesterday on every premise, accepted, and its
        data ingested: (agreement id, its start, its end)."""
        now = self.gw.clock.now()
        start, end = _midnight(now, -2), _midnight(now, -1)
        agreement = await self.agreement(token, {"mode": "one_time", "interval": interval,
                                                 "from": start.isoformat(), "to": end.isoformat()})
        await self.ingest()
        return agreement, start, end

    async def ingest(self) -> None:
        r = await self.gw.client.post("/v1/usage-ingestion-runs", headers=self.gw.op)
        assert r.status_code == 200 and r.json()["reads"] > 0, r.text

    async def ask(self, token: str, **body: Any) -> httpx.Response:
        for key in ("from", "to"):
            if isinstance(body.get(key), datetime):
                body[key] = body[key].isoformat()
        return await self.gw.client.post("/v1/usage-reports", headers=self.gw.auth(token), json=body)

    async def status(self, token: str, report_id: int) -> dict[str, Any]:
        r = await self.gw.client.get(f"/v1/usage-reports/{report_id}", headers=self.gw.auth(token))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def until_done(self, token: str, report_id: int) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = await self.status(token, report_id)
            if body["state"] in ("done", "failed"):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"report {report_id} not done: {body}")

    async def endpoint_rows(self, token: str, esi_id: str, start: datetime, end: datetime) -> list[list[str]]:
        """The usage endpoint's CSV rows of the premise (every page), without the header."""
        rows: list[list[str]] = []
        cursor = ""
        while True:
            r = await self.gw.client.get(f"/v1/premises/{esi_id}/usage", headers={
                **self.gw.auth(token), "Accept": "text/csv"}, params={
                "from": start.isoformat(), "to": end.isoformat(), "limit": 5000, "cursor": cursor})
            assert r.status_code == 200, r.text
            rows += list(csv.reader(io.StringIO(r.text)))[1:]
            if "link" not in r.headers:
                return rows
            cursor = httpx.URL(r.headers["link"].split(">")[0][1:]).params["cursor"]


@contextlib.asynccontextmanager
async def running(data_dir: Path, storage_url: str | None = None, *, per_tdsp: int = 1,
                  role: str = "all") -> AsyncIterator[Field]:
    sections: dict[str, Any] = {"usage": {"report_poll_seconds": 0.2, "report_chunk_premises": 2},
                                "server": {"role": role}}
    if storage_url:
        sections["storage"] = {"url": storage_url}
    config = gateway_config(data_dir, **sections)
    config.data_dir.mkdir(parents=True)
    store = await open_test_store(config)
    clock = ManualClock()
    _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
    vclock = VirtualClock(start=clock.now().timestamp(), seed=5)
    items = premises(per_tdsp)
    field, _devices = build_field(vclock, items)
    app = create_app(config, store=store, clock=clock, run_timers=False,
                     routes=RouteSet(SimulatedRoute(field, now=time.time)))
    server, task, port = await start_server(app)
    base_url = f"http://127.0.0.1:{port}"
    config.server.public_url = base_url
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            gw = Gateway(base_url, client, store, clock, config, operator_token)
            await gw.load_premises(premises_csv(items, CUSTOMER))
            yield Field(gw, vclock, items, app)
    finally:
        await stop_server(server, task)
        await store.close()


async def test_a_report_equals_the_usage_endpoint_premise_by_premise(tmp_path: Path, store_url: str | None) -> None:
    async with running(tmp_path / "d", store_url) as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        _, other = await f.gw.new_party("Snoop", "987654321")
        agreement, start, end = await f.one_day_ingested(token, "15min")
        esi_ids = sorted(p.esi_id for p in f.items)

        r = await f.ask(token, agreement_ids=[agreement], **{"from": start, "to": end})
        assert r.status_code == 202, r.text
        report = r.json()
        assert report["state"] == "queued" and report["premises_total"] == len(esi_ids) and report["file_url"] is None
        done = await f.until_done(token, report["id"])
        assert done["state"] == "done", done
        assert done["premises_done"] == len(esi_ids) and done["file_url"] == f"/v1/usage-reports/{report['id']}/file"

        r = await f.gw.client.get(done["file_url"], headers=f.gw.auth(token))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
        assert int(r.headers["content-length"]) == done["file_bytes"] == len(r.content)
        lines = list(csv.reader(io.StringIO(r.text)))
        assert lines[0][:2] == ["esi_id", "start_local"] and len(lines) - 1 == done["rows_written"]
        body = lines[1:]
        # In (esi_id, channel, interval start) order, and per premise the endpoint's rows exactly.
        assert [(row[0], row[4], row[3]) for row in body] == sorted((row[0], row[4], row[3]) for row in body)
        for esi_id in esi_ids:
            ours = [row[1:] for row in body if row[0] == esi_id]
            theirs = await f.endpoint_rows(token, esi_id, start, end)
            assert len(ours) >= 96 and sorted(ours) == sorted(theirs), esi_id

        # Its completion is an event of the party's.
        events = (await f.gw.client.get("/v1/events", headers=f.gw.auth(token))).json()["items"]
        completed = [e["event"] for e in events if e["type"] == "usage_report.completed"]
        assert completed and completed[0]["report_id"] == report["id"] and completed[0]["rows"] == len(body)
        assert _shape_differences(_catalogue()["usage_report.completed"], completed[0]) == []  # as documented

        # Another party: exactly what an unknown id gets.
        for path in (f"/v1/usage-reports/{report['id']}", done["file_url"], "/v1/usage-reports/999999"):
            r = await f.gw.client.get(path, headers=f.gw.auth(other))
            assert r.status_code == 404 and r.json()["code"] == "unknown_usage_report", r.text
        # ... nor may it ask for a report over this party's agreement or premises.
        r = await f.ask(other, agreement_ids=[agreement], **{"from": start, "to": end})
        assert r.status_code == 404 and r.json()["code"] == "unknown_agreement", r.text
        r = await f.ask(other, esi_ids=[esi_ids[0]], **{"from": start, "to": end})
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "esi_ids[0]", r.text

        # Refused at request time, typed: a period outside the agreement, a finer interval than
        # granted is not the case here, a format not built yet, neither or both ways of naming premises.
        r = await f.ask(token, agreement_ids=[agreement], **{"from": start - timedelta(days=1), "to": end})
        assert r.status_code == 403 and r.json()["code"] == "period_not_covered", r.text
        r = await f.ask(token, esi_ids=esi_ids[:2], **{"from": start, "to": end + timedelta(days=1)})
        assert r.status_code == 403 and r.json()["code"] == "period_not_covered", r.text
        r = await f.ask(token, agreement_ids=[agreement], format="xlsx", **{"from": start, "to": end})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "format", r.text
        r = await f.ask(token, agreement_ids=[agreement], format="espi", interval="daily", **{"from": start, "to": end})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "interval", r.text
        r = await f.ask(token, **{"from": start, "to": end})
        assert r.status_code == 422 and r.json()["errors"][0]["code"] == "one_of_required", r.text

        # An explicit list and daily sums: each premise's rows are the endpoint's daily rows.
        r = await f.ask(token, esi_ids=esi_ids[:2], interval="daily", **{"from": start, "to": end})
        assert r.status_code == 202, r.text
        daily = await f.until_done(token, r.json()["id"])
        text = (await f.gw.client.get(daily["file_url"], headers=f.gw.auth(token))).text
        rows = list(csv.reader(io.StringIO(text)))[1:]
        assert {row[0] for row in rows} == set(esi_ids[:2])
        for esi_id in esi_ids[:2]:
            r = await f.gw.client.get(f"/v1/premises/{esi_id}/usage", headers={
                **f.gw.auth(token), "Accept": "text/csv"}, params={
                "from": start.isoformat(), "to": end.isoformat(), "interval": "daily"})
            assert sorted(row[1:] for row in rows if row[0] == esi_id) == sorted(list(csv.reader(
                io.StringIO(r.text)))[1:])


async def test_a_stopped_worker_hands_back_and_another_restarts(tmp_path: Path) -> None:
    """No worker in the gateway (role api): two worker instances, the first stopped mid-report."""
    async with running(tmp_path / "d", per_tdsp=3, role="api") as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        agreement, start, end = await f.one_day_ingested(token, "15min")
        report = (await f.ask(token, agreement_ids=[agreement], **{"from": start, "to": end})).json()
        total = report["premises_total"]
        assert total >= 10 and (await f.status(token, report["id"]))["state"] == "queued"

        first = asyncio.create_task(f.worker(chunk=1).run_once())
        seen = []
        while True:  # progress, as the party sees it, moves while the report is produced
            body = await f.status(token, report["id"])
            seen.append(body["premises_done"])
            if body["premises_done"] >= 2:
                break
            assert not first.done(), body
            await asyncio.sleep(0.05)  # within the party's rate limit
        first.cancel()  # a graceful stop of that instance: the report is handed back
        with contextlib.suppress(asyncio.CancelledError):
            await first
        body = await f.status(token, report["id"])
        assert body["state"] == "running" and 2 <= body["premises_done"] < total, body
        assert seen == sorted(seen) and seen[0] < seen[-1]
        assert not list((f.gw.config.data_dir / "usage-reports").glob("*.part"))  # its partial file is gone

        assert await f.worker(chunk=4).run_once()  # another instance takes it at once and restarts it
        done = await f.status(token, report["id"])
        assert done["state"] == "done" and done["premises_done"] == total, done
        text = (await f.gw.client.get(done["file_url"], headers=f.gw.auth(token))).text
        rows = list(csv.reader(io.StringIO(text)))[1:]
        assert len({r[0] for r in rows}) == total and len(rows) == done["rows_written"]
        keys = [(r[0], r[4], r[3]) for r in rows]
        assert len(keys) == len(set(keys)), "a premise written twice"


async def test_an_agreement_ending_during_production_stops_its_data(tmp_path: Path, store_url: str | None) -> None:
    async with running(tmp_path / "d", store_url, role="api") as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        _, other_token = await f.gw.new_party("Volt", "111222333")
        esi_id = f.items[0].esi_id
        mine = await f.agreement(token, {"mode": "continuous", "interval": "15min"}, [esi_id])
        await f.agreement(other_token, {"mode": "continuous", "interval": "15min"}, [esi_id], email=CUSTOMER)
        accepted = f.gw.clock.now()
        begin = datetime.fromtimestamp((int(accepted.timestamp()) // 900 + 1) * 900, UTC)
        f.advance(timedelta(days=1))
        await f.ingest()
        period = {"from": begin, "to": begin + timedelta(days=2)}  # reaches past now: continuous data
        report = (await f.ask(token, agreement_ids=[mine], **period)).json()
        theirs = (await f.ask(other_token, esi_ids=[esi_id], **period)).json()

        r = await f.gw.client.post(f"/v1/agreements/{mine}/terminate", headers=f.gw.auth(token))
        assert r.status_code == 200, r.text
        ended = f.gw.clock.now()
        f.advance(timedelta(days=1, hours=2))
        await f.ingest()  # the other party's agreement still fetches the premise's data
        worker = f.worker(chunk=1)
        assert await worker.run_once() and await worker.run_once()

        async def starts(tok: str, report_id: int) -> list[datetime]:
            done = await f.status(tok, report_id)
            assert done["state"] == "done", done
            text = (await f.gw.client.get(done["file_url"], headers=f.gw.auth(tok))).text
            return sorted({datetime.fromisoformat(r[3]) for r in list(csv.reader(io.StringIO(text)))[1:]})

        stopped, kept = await starts(token, report["id"]), await starts(other_token, theirs["id"])
        assert stopped and stopped[0] == begin and stopped[-1] < ended <= stopped[-1] + timedelta(minutes=15)
        assert kept[-1] > ended + timedelta(hours=12)  # the data was there: only the ended agreement stopped


async def test_files_are_deleted_after_their_retention(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        agreement, start, end = await f.one_day_ingested(token, "daily")
        r = await f.ask(token, agreement_ids=[agreement], interval="15min", **{"from": start, "to": end})
        assert r.status_code == 403 and r.json()["code"] == "interval_not_granted", r.text
        r = await f.ask(token, agreement_ids=[agreement], interval="daily", **{"from": start, "to": end})
        done = await f.until_done(token, r.json()["id"])
        path = f.gw.config.data_dir / "usage-reports" / f"report-{done['id']}.csv"
        assert path.is_file() and datetime.fromisoformat(done["expires_at"]) == datetime.fromisoformat(
            done["finished_at"]) + timedelta(days=7)

        f.advance(timedelta(days=7, minutes=1))
        deadline = time.monotonic() + 10
        while (body := await f.status(token, done["id"]))["state"] != "expired":  # the gateway's worker, polling
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
        assert not path.exists() and body["file_url"] is None
        r = await f.gw.client.get(f"/v1/usage-reports/{done['id']}/file", headers=f.gw.auth(token))
        assert r.status_code == 410 and r.json()["code"] == "report_expired", r.text


async def test_a_green_button_report_is_valid_espi_and_equals_the_store(tmp_path: Path, store_url: str | None) -> None:
    """format=espi: one Atom feed of every premise of the agreement (a UsagePoint each), valid
    against our ESPI subset schema (and the published one when HANGW_ESPI_XSD_DIR is set), and read
    back by greenbutton-objects as the store's 15-minute values — on PostgreSQL through the
    server-rendered blocks."""
    async with running(tmp_path / "d", store_url) as f:
        _, token = await f.gw.new_party("Watts", "123456789")
        agreement, start, end = await f.one_day_ingested(token, "15min")
        r = await f.ask(token, agreement_ids=[agreement], format="espi", **{"from": start, "to": end})
        assert r.status_code == 202, r.text
        done = await f.until_done(token, r.json()["id"])
        assert done["state"] == "done", done
        r = await f.gw.client.get(done["file_url"], headers=f.gw.auth(token))
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml"), r.text
        validate(r.content, published=bool(ESPI_XSD_DIR))
        feed = parsed(r.content)
        esi_ids = sorted(p.esi_id for p in f.items)
        assert sorted(feed) == sorted(f"ESI ID {e}" for e in esi_ids)
        for esi_id in esi_ids:
            rows = [x for x in await f.gw.store.usage_channel_page(esi_id, "consumption", start, end, limit=10_000)
                    if x.quality != "missing"]
            got = feed[f"ESI ID {esi_id}"]["forward"]
            assert len(rows) >= 92
            assert [(g[0], g[2]) for g in got] == [(x.interval_start, x.value_wh) for x in rows], esi_id
