"""Energy Data through a TDSP head-end, end to end over real HTTP (issue 16): the gateway's Oncor
premises are reached through the real MultiSpeak adapter and the emulated head-end serving the
simulated field; an operator's ingestion run stores the interval data the meter has, to the Wh;
with the head-end down the run names the premise and stores nothing; back, the next run fills the
period and the one after fetches nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx

from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.profiles import load_profile
from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from sandbox.headends import headend_for_profile
from sandbox.simfield import build_field, premises, premises_csv
from sandbox.simulated_route import SimulatedRoute
from simulators.clock import VirtualClock
from simulators.headends.factory import HeadEnd
from tests.gateway.conftest import Gateway, gateway_config, open_test_store, start_server, stop_server
from tests.pipeline.conftest import CUSTOMER
from tests.pipeline.test_usage_e2e import Field, _all_pages, _midnight


@contextlib.asynccontextmanager
async def field_with_oncor_head_end(data_dir: Path) -> AsyncIterator[tuple[Field, HeadEnd]]:
    """`running_field`'s gateway and simulated field, with the Oncor premises reached through the
    real MultiSpeak adapter and an emulated head-end on the same field and clock (the other TDSPs
    through the simulated route)."""
    config = gateway_config(data_dir)
    config.data_dir.mkdir(parents=True)
    store = await open_test_store(config)
    clock = ManualClock()
    _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
    vclock = VirtualClock(start=clock.now().timestamp(), seed=3)
    items = premises(1)
    field, _devices = build_field(vclock, items)
    by_tdsp = {p.tdsp: p for p in items}
    headend = headend_for_profile(load_profile("oncor"), field, vclock)
    await headend.start()
    adapter = make_adapter(AdapterConfig("oncor", url=headend.url,  # type: ignore[attr-defined]
                                         profile_overrides={"retries": 0}))
    await adapter.start()
    route = SimulatedRoute(field, now=time.time)
    routes = RouteSet(route, {by_tdsp["oncor"].esi_id[:7]: adapter})
    app = create_app(config, store=store, clock=clock, run_timers=False, routes=routes)
    server, task, port = await start_server(app)
    base_url = f"http://127.0.0.1:{port}"
    config.server.public_url = base_url
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            gw = Gateway(base_url, client, store, clock, config, operator_token)
            await gw.load_premises(premises_csv(items, CUSTOMER))
            yield Field(gw, vclock, field, by_tdsp, route), headend
    finally:
        await stop_server(server, task)
        await adapter.close()
        await headend.close()
        await store.close()


async def test_energy_data_ingested_through_the_multispeak_head_end(tmp_path: Path) -> None:
    async with field_with_oncor_head_end(tmp_path / "d") as (f, headend):
        _, token = await f.gw.new_party("Watts", "123456789")
        now = f.gw.clock.now()
        start, end = _midnight(now, -3), _midnight(now, -1)
        r = await f.invite(token, "oncor", {"mode": "one_time", "interval": "15min",
                                            "from": start.isoformat(), "to": end.isoformat()})
        assert r.status_code == 201, r.text
        assert (await f.gw.consent(CUSTOMER)).status_code == 200

        # The head-end is away: the run names the premise and its route; nothing is stored.
        down = asyncio.create_task(headend.down_for(3.0))
        await asyncio.sleep(0.2)
        run = await f.ingest()
        assert [(e["esi_id"], e["route"]) for e in run["errors"]] == [(f.esi("oncor"), "oncor")], run
        assert run["errors"][0]["reason"].startswith("head-end Oncor") and run["reads"] == 0
        await down
        await asyncio.sleep(0.3)

        # Back: the period is read through MR_Server and stored; the next run fetches nothing.
        run = await f.ingest()
        assert run["errors"] == [] and run["reads"] >= 2 * 96, run
        assert (await f.ingest())["reads"] == 0
        assert headend.core.stats["interval_reads"] >= 2

        items = await _all_pages(f, token, "oncor", start, end, interval="15min", limit=500)
        own = f.field.meter(f.esi("oncor")).read_usage(start.timestamp(), end.timestamp())
        assert [(int(datetime.fromisoformat(i["start"]).timestamp()), i["channel"], i["value_wh"], i["quality"])
                for i in items] == [(m.start, m.channel, m.value_wh, m.quality) for m in own]
        assert len([i for i in items if i["channel"] == "consumption"]) == 2 * 96 + _dst_shift(start, end)


def _dst_shift(start: datetime, end: datetime) -> int:
    """Intervals more or fewer than 96 a day in [start, end) (a DST change day)."""
    return int((end - start).total_seconds()) // 900 - 2 * 96

