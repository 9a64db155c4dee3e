"""Usage reads over the three head-end protocols (issue 16), against the emulated head-ends over real
sockets (and the real Mosquitto for 61968-9): interval data equal to the simulated meter's own to
the Wh (both channels where the premise has solar), paged by the head-end; an on-demand read equal
to the meter's register; a garbled answer refused by field, value and limit; the head-end down.

oncor = MultiSpeak 4.1, centerpoint = IEC 61968-9 over MQTT, tnmp = the binary protocol."""

from __future__ import annotations

import asyncio
import time

import pytest

from ams_adapters.usage import (
    Channel,
    MeterReadRoute,
    UsageAnswerInvalid,
    UsageRoute,
    UsageUnavailable,
    read_meter,
    read_usage,
)
from simulators.headends.faults import Faults
from simulators.usage import load_shape, register_now
from tests.adapters.harness import Rig, rig, until_reads_again

PROTOCOLS = ("oncor", "centerpoint", "tnmp")


def _window(hours: int) -> tuple[int, int]:
    end = int(time.time()) // 900 * 900 - 900
    return end - hours * 3600, end


def _solar_premise(r: Rig) -> str:
    esi: str = next(e for e in (r.fleet.esi_id(i) for i in range(r.fleet.size)) if load_shape(e).solar_kw)
    return esi


@pytest.mark.parametrize("tdsp", PROTOCOLS)
async def test_intervals_equal_the_meters_own_to_the_wh_across_pages(tdsp: str) -> None:
    # The head-end answers 10 intervals a call, the adapter asks 16 at most: a 30-hour read is
    # many pages of both kinds, reassembled.
    async with rig(tdsp, meters=12, max_intervals_per_read=10,
                   profile_overrides={"read_page_intervals": 16}) as r:
        assert isinstance(r.adapter, UsageRoute) and isinstance(r.adapter, MeterReadRoute)
        esi = _solar_premise(r)
        start, end = _window(30)
        reads = await read_usage(r.adapter, esi, start, end)
        own = r.fleet.meter(esi).read_usage(start, end)
        assert [(x.start, x.length_s, x.channel.value, x.value_wh, x.quality.value) for x in reads] == [
            (m.start, m.length_s, m.channel, m.value_wh, m.quality) for m in own]
        assert {x.channel for x in reads} == {Channel.CONSUMPTION, Channel.GENERATION}
        assert len([x for x in reads if x.channel is Channel.CONSUMPTION]) == 120
        assert sum(x.value_wh for x in reads if x.channel is Channel.GENERATION) > 0
        # 120 intervals at 10 a call from the head-end: at least 12 calls.
        assert r.core.stats["interval_reads"] >= 12 and r.core.stats["intervals_read"] == len(reads)


@pytest.mark.parametrize("tdsp", PROTOCOLS)
async def test_an_on_demand_read_equals_the_meters_register(tdsp: str) -> None:
    async with rig(tdsp, meters=4) as r:
        esi = r.fleet.esi_id(1)
        read = await read_meter(r.adapter, esi)
        meter = r.fleet.meter(esi)
        now = meter.register_read()
        if now.at != read.read_at:  # a 15-minute boundary passed since: the register as it was then
            now = register_now(meter.usage_shape(), read.read_at, meter.curtailments())
        assert (read.read_at, read.delivered_wh, read.demand_w) == (now.at, now.delivered_wh, now.demand_w)
        assert r.core.stats["meter_reads"] == 1
        # The register agrees with the interval data read through the same head-end.
        start, end = _window(3)
        assert read.delivered_wh > sum(x.value_wh for x in await read_usage(r.adapter, esi, start, end)
                                       if x.channel is Channel.CONSUMPTION) > 0


@pytest.mark.parametrize("tdsp", PROTOCOLS)
async def test_a_garbled_answer_is_refused_by_field_value_and_limit(tdsp: str) -> None:
    faults = Faults()
    async with rig(tdsp, meters=4, faults=faults) as r:
        esi = r.fleet.esi_id(0)
        start, end = _window(2)
        faults.bad_read_rate = 1.0
        with pytest.raises(UsageAnswerInvalid) as bad:
            await read_usage(r.adapter, esi, start, end)
        assert bad.value.field in ("value", "reading") and bad.value.limit
        assert "Wh" in str(bad.value) or "kWh" in str(bad.value)
        assert r.core.stats["bad_reads"] >= 1
        faults.bad_read_rate = 0.0
        assert len(await read_usage(r.adapter, esi, start, end)) >= 8


@pytest.mark.parametrize("tdsp", PROTOCOLS)
async def test_unknown_meter_dark_meter_and_head_end_down(tdsp: str) -> None:
    async with rig(tdsp, meters=4, profile_overrides={"meter_read_timeout_s": 0.5, "retries": 0}) as r:
        start, end = _window(1)
        with pytest.raises(UsageUnavailable, match="no such meter"):
            await read_usage(r.adapter, "10443729999999999", start, end)
        esi = r.fleet.esi_id(2)
        r.fleet.meter(esi).set_reachable(False)
        with pytest.raises(UsageUnavailable, match="unreachable") as dark:
            await read_usage(r.adapter, esi, start, end)
        assert dark.value.retry_after_s
        # The on-demand read of a dark meter: the head-end retries it until the expirationTime,
        # then drops it; the adapter says so after that time.
        began = time.monotonic()
        with pytest.raises(UsageUnavailable, match="expirationTime"):
            await read_meter(r.adapter, esi)
        assert 0.5 <= time.monotonic() - began < 5
        assert r.core.stats["expired_at_headend"] >= 1  # the head-end dropped it at its expirationTime
        r.fleet.meter(esi).set_reachable(True)
        # Down longer than a request's timeout (over 61968-9 the broker keeps the request for the
        # head-end, which answers once back: a reply that comes too late is dropped).
        down = asyncio.create_task(r.headend.down_for(r.adapter.profile.request_timeout_s + 1.0))
        await asyncio.sleep(0.3)
        with pytest.raises(UsageUnavailable) as away:
            await read_usage(r.adapter, esi, start, end)
        assert away.value.retry_after_s
        await down
        await until_reads_again(r, esi)
        assert len(await read_usage(r.adapter, esi, start, end)) >= 4
