"""The route contract's optional usage-read capability (issue 16): the simulated routes and the head-end
adapters have it (the adapters' reads over each protocol: tests/adapters/test_usage_headends.py); the
radio route does not yet, and asking it is a typed refusal naming the route; the simulated field in
its own process (`hangw sim-field`) answers over real HTTP exactly what its meters' usage model
gives."""

from __future__ import annotations

import time

import pytest

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.radio.route import RadioRoute
from ams_adapters.usage import (
    Channel,
    MeterRead,
    MeterReadRoute,
    UsageRead,
    UsageRoute,
    UsageUnavailable,
    read_usage,
)
from sandbox.simfield import field_server_app, premises
from sandbox.simulated_route import RemoteSimulatedRoute, SimulatedRoute
from simulators.usage import interval_reads, load_shape
from tests.gateway.conftest import start_server, stop_server


def test_which_routes_have_the_capability() -> None:
    assert issubclass(SimulatedRoute, UsageRoute) and issubclass(RemoteSimulatedRoute, UsageRoute)
    assert issubclass(HeadEndAdapter, UsageRoute) and issubclass(HeadEndAdapter, MeterReadRoute)
    # The radio reads the meter over the HAN (tests/radio/test_meter_reads.py).
    assert issubclass(RadioRoute, UsageRoute) and issubclass(RadioRoute, MeterReadRoute)
    assert issubclass(SimulatedRoute, MeterReadRoute)


@pytest.mark.parametrize(("tdsp", "config"), [
    ("oncor", AdapterConfig("oncor", url="http://127.0.0.1:9")),
    ("tnmp", AdapterConfig("tnmp", port=9)),
])
async def test_a_head_end_route_that_is_not_reachable_is_unavailable_not_unsupported(
        tdsp: str, config: AdapterConfig) -> None:
    adapter = make_adapter(config)  # never started: nothing to ask
    with pytest.raises(UsageUnavailable) as info:
        await read_usage(adapter, "10443720000000001", 0, 900)
    assert info.value.retry_after_s and "transport" in str(info.value)


def test_a_read_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="delivered_wh"):
        MeterRead(0, -1)
    with pytest.raises(ValueError, match="value_wh"):
        UsageRead(0, 900, Channel.CONSUMPTION, -1, "actual")  # type: ignore[arg-type]


async def test_the_simulated_field_in_its_own_process_answers_over_http() -> None:
    server, task, port = await start_server(field_server_app(per_tdsp=1, speed=1.0))
    route = RemoteSimulatedRoute(f"http://127.0.0.1:{port}")
    esi = premises(1)[0].esi_id
    end = int(time.time()) // 900 * 900 - 900
    start = end - 6 * 3600
    try:
        reads = await read_usage(route, esi, start, end)
        model = interval_reads(load_shape(esi), start, end)
        assert [(r.start, r.length_s, r.channel.value, r.value_wh, r.quality.value) for r in reads] == [
            (m.start, m.length_s, m.channel, m.value_wh, m.quality) for m in model]
        assert len([r for r in reads if r.channel is Channel.CONSUMPTION]) == 24
        with pytest.raises(UsageUnavailable, match="no such meter"):
            await route.read_usage("10443729999999999", start, end)
    finally:
        await route.close()
        await stop_server(server, task)
