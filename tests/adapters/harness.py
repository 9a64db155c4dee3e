"""A TDSP adapter wired to its emulated head-end over real sockets (and the real Mosquitto for
61968-9), serving a lazily built fleet of simulated premises on a RealClock.

This is the conformance kit's rig: an integrator binding a real head-end replaces the emulator
with their system and keeps the suite (docs/adapter-author.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.contract import (
    CAPABLE_DEVICES,
    DeliveredToMeter,
    DeliveryFailed,
    HanOperation,
    InboundEvent,
    OperationKind,
    ProvisioningUpdate,
    Target,
)
from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.profiles import load_profile
from ams_adapters.usage import UsageUnavailable
from sandbox.headends import headend_for_profile
from simulators.clock import RealClock
from simulators.fleet import Fleet
from simulators.headends.factory import HeadEnd
from simulators.headends.faults import Faults
from simulators.headends.proxy import FaultProxy
from simulators.meter import SimMeter
from zigbee_se import SEVersion

TDSPS = ("oncor", "centerpoint", "aep_central", "aep_north", "tnmp")
MQTT = ("127.0.0.1", 1883)


class QuickFleet(Fleet):
    """A fleet whose meters finish joins in 50 ms instead of 2 s (wall-clock tests)."""

    def _make_meter(self, esi_id: str) -> SimMeter | None:
        meter = super()._make_meter(esi_id)
        if meter is not None:
            meter.join_time_s = 0.05
            meter.hop_delay_s = 0.005
        return meter


@dataclass
class Rig:
    tdsp: str
    adapter: HeadEndAdapter
    headend: HeadEnd
    fleet: QuickFleet
    proxy: FaultProxy | None
    events: list[InboundEvent] = field(default_factory=list)
    _pump: asyncio.Task[None] | None = None

    @property
    def core(self) -> Any:
        return self.headend.core

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> list[InboundEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [e for e in self.events if predicate(e)]
            if hits:
                return hits
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching event within {timeout}s; got {self.events[-10:]}")

    async def until(self, condition: Any, timeout: float = 5.0) -> Any:
        """Wait until ``condition()`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError(f"condition not met within {timeout}s; last events {self.events[-10:]}")

    def ends(self, outbound_id: str) -> list[InboundEvent]:
        return [e for e in self.events if isinstance(e, DeliveredToMeter | DeliveryFailed)
                and e.outbound_id == outbound_id]

    def updates(self, request_id: str) -> list[ProvisioningUpdate]:
        return [e for e in self.events if isinstance(e, ProvisioningUpdate) and e.request_id == request_id]


@contextlib.asynccontextmanager
async def rig(tdsp: str, *, faults: Faults | None = None, via_proxy: bool = False, meters: int = 20,
              transport: str | None = None, profile_overrides: dict[str, Any] | None = None,
              **settings: Any) -> AsyncIterator[Rig]:
    profile = load_profile(tdsp, **(profile_overrides or {}))
    if transport is not None:
        profile = profile.with_transport(transport)
    clock = RealClock(seed=11)
    fleet = QuickFleet(meters, clock)
    prefix = f"test/{tdsp}/{uuid.uuid4().hex[:8]}"
    headend = headend_for_profile(profile, fleet, clock, topic_prefix=prefix, faults=faults, **settings)
    await headend.start()
    proxy = None
    target = MQTT if profile.transport == "cim" else ("127.0.0.1", headend.port)  # type: ignore[attr-defined]
    if via_proxy:
        proxy = FaultProxy(*target)
        await proxy.start()
        target = ("127.0.0.1", proxy.port)
    cfg = AdapterConfig(tdsp=tdsp, transport=profile.transport, url=f"http://{target[0]}:{target[1]}",
                        host=target[0], port=target[1], topic_prefix=prefix,
                        client_id=f"gw-{uuid.uuid4().hex[:8]}", profile_overrides=profile_overrides or {})
    adapter = make_adapter(cfg)
    await adapter.start()
    r = Rig(tdsp, adapter, headend, fleet, proxy)

    async def pump() -> None:
        async for ev in adapter.events():
            r.events.append(ev)

    r._pump = asyncio.create_task(pump())
    try:
        yield r
    finally:
        r._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await r._pump
        await adapter.close()
        if proxy is not None:
            await proxy.close()
        await headend.close()


# ------------------------------------------------------------------ operations


def op(kind: OperationKind, esi: str, outbound_id: str | None = None, *, target: Target = CAPABLE_DEVICES,
       expires_in: float = 10.0, **fields: Any) -> HanOperation:
    """A HanOperation as the gateway's pipeline builds it: SE fields and the encoded frame."""
    cluster, command, base = {
        OperationKind.TEXT: (0x0703, "display_message", {
            "message_id": 1, "message_control": 0x80, "start_time": 0, "duration_in_minutes": 30,
            "message": "Peak pricing 4-7pm"}),
        OperationKind.CANCEL_TEXT: (0x0703, "cancel_message", {"message_id": 1, "message_control": 0}),
        OperationKind.PRICE: (0x0700, "publish_price", {
            "provider_id": 1, "rate_label": "TOU", "issuer_event_id": 1, "current_time": 0, "unit_of_measure": 0,
            "currency": 840, "price_trailing_digit": 2, "price_tier": 1, "number_of_price_tiers": 3,
            "register_tier": 1, "start_time": 0, "duration_in_minutes": 60, "price": 1234,
            "price_control": 0x01}),
        OperationKind.LOAD_CONTROL: (0x0701, "load_control_event", {
            "issuer_event_id": 1, "device_class": 0x0FFF, "utility_enrollment_group": 0, "start_time": 0,
            "duration_in_minutes": 30, "criticality_level": 3, "cooling_temperature_offset": 20,
            "heating_temperature_offset": 0xFF, "cooling_temperature_set_point": -32768,
            "heating_temperature_set_point": -32768, "average_load_adjustment_percentage": -128,
            "duty_cycle": 0xFF, "event_control": 0}),
        OperationKind.CANCEL_LOAD_CONTROL: (0x0701, "cancel_load_control_event", {
            "issuer_event_id": 1, "device_class": 0x0FFF, "utility_enrollment_group": 0, "cancel_control": 0,
            "effective_time": 0}),
        OperationKind.CANCEL_ALL_LOAD_CONTROL: (0x0701, "cancel_all_load_control_events", {"cancel_control": 0}),
    }[kind]
    values = base | fields
    return HanOperation(outbound_id=outbound_id or uuid.uuid4().hex, esi_id=esi, target=target, kind=kind,
                        cluster_id=cluster, command=command, fields=values, se_version=SEVersion.V1_1,
                        expires_at=time.time() + expires_in)


async def install(r: Rig, count: int = 3) -> list[str]:
    """Field technician's visit at ``count`` premises; waits until their devices joined."""
    esis = [r.fleet.esi_id(i) for i in range(count)]
    for e in esis:
        r.fleet.install(e)
    await asyncio.sleep(0.2)
    return esis


# ------------------------------------------------------------------ what a head-end was sent


# How much later than sent an emulated head-end may see a batch: it shares the event loop with the
# client on a loaded machine, and over 61968-9 a message also waits in the broker and behind the
# emulator's QoS-1 reply to the one before (measured: up to ~0.2 s on the shared 2-core machine), so
# batches sent 100 ms apart can arrive closer together. Sending without pacing still fails: 32
# requests at once against 4 + 40·(0.01 + 0.25).
ARRIVAL_SLACK_S = 0.25


def most_within(received: list[tuple[float, int]], seconds: float) -> int:
    """The most requests a head-end got within any `seconds` (its `core.received`)."""
    times = sorted(t for t, n in received for _ in range(n))
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] < t - seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def assert_paced(received: list[tuple[float, int]], *, batch_size: int, rate_per_s: float) -> None:
    """The head-end never got a message of more than `batch_size` requests, nor more than
    burst + rate·t requests in any t seconds (burst = max(batch_size, rate/10), the adapter's
    documented burst), allowing `ARRIVAL_SLACK_S` of lateness."""
    burst = max(batch_size, rate_per_s / 10)
    assert received, "the head-end got nothing"
    assert max(n for _, n in received) <= batch_size, received
    span = max(t for t, _ in received) - min(t for t, _ in received)
    for seconds in (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, span):
        allowed = burst + rate_per_s * (seconds + ARRIVAL_SLACK_S)
        assert most_within(received, seconds) <= allowed, (seconds, most_within(received, seconds), allowed)


async def until_reads_again(r: Rig, esi: str, timeout: float = 8.0) -> None:
    """After a head-end outage: wait until an interval read through the adapter succeeds (a
    transport reconnects with backoff, up to about a second after the head-end is back)."""
    end = int(time.time()) // 900 * 900 - 900
    deadline = time.monotonic() + timeout
    while True:
        try:
            await r.adapter.read_usage(esi, end - 900, end)
            return
        except UsageUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
