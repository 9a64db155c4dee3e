"""The radio route's ESI, end to end: real bellows, the NCP emulator over a pty, an SE device asking
the gateway what it missed (issue 13, "The ESI"). The ESI's clock is a hand-driven virtual one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ams_adapters.contract import (
    CAPABLE_DEVICES,
    DeviceResponse,
    OperationKind,
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    SubmitOutcome,
)
from ams_adapters.radio import CoordinatorSession, DeliveryResult, OutboundFrame, RadioConfig
from ams_adapters.radio.route import RadioRoute
from simulators.client_device import ClientDevice
from simulators.device import DRLC, MESSAGING, PRICE, TIME
from simulators.ncp import NcpEmulator
from tests.radio.devices import display, eui64_of
from tests.radio.test_route import ESI, next_of, operation
from tests.radio.test_session import CODE, EUI, joined, wait_for
from zigbee_se import encode_frame, parse_install_code, utc_from_unix


class Clock:
    """Unix seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


__all__ = ["joined"]  # test_session's fixture: a device joined through the route below


@pytest.fixture
async def route(emulator: NcpEmulator, clock: Clock) -> AsyncIterator[CoordinatorSession]:
    r = CoordinatorSession(RadioConfig(device=emulator.path, use_thread=False, reconnect_min_s=0.05), clock=clock)
    await r.start()
    yield r
    await r.stop()


async def deliver(route: CoordinatorSession, outbound_id: str, cluster: int, command: str, fields: dict[str, Any],
                  *, se_version: str = "1.1") -> None:
    frame = encode_frame(cluster, command, fields, tsn=1, se_version=se_version)
    await route.submit([OutboundFrame(outbound_id, EUI, cluster, frame)])
    await wait_for(route, DeliveryResult, outbound_id=outbound_id)


async def replies(device: ClientDevice, cluster: int, settle: float = 0.6) -> list[Any]:
    """Frames of `cluster` the device receives until it has heard nothing for `settle` seconds."""
    out = []
    while True:
        try:
            got, frame = await asyncio.wait_for(device.frames.get(), settle)
        except TimeoutError:
            return out
        if got == cluster:
            out.append(frame)


def without_acks(frames: list[Any]) -> list[Any]:
    """Leave out the ESI's Default Response SUCCESS to the device's own Report Event Status."""
    return [f for f in frames if not (f.command == "default_response" and f.fields["status"] == 0)]


def lce(iid: int, start: int, minutes: int) -> dict[str, Any]:
    return {"issuer_event_id": iid, "device_class": 0x0001, "utility_enrollment_group": 0, "start_time": start,
            "duration_in_minutes": minutes, "criticality_level": 3, "event_control": 0}


async def test_superseded_event_is_not_reissued(route, joined, clock) -> None:
    start = utc_from_unix(clock.now + 600)
    await deliver(route, "lce-200", DRLC, "load_control_event", lce(200, start, 60))
    await deliver(route, "lce-201", DRLC, "load_control_event", lce(201, start + 300, 60))
    await replies(joined, DRLC)
    joined.send(DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 0})
    answered = without_acks(await replies(joined, DRLC))
    assert [(f.command, f.fields.get("issuer_event_id")) for f in answered] == [("load_control_event", 201)]


async def test_start_now_event_reissued_midway_ends_by_its_real_end(route, joined, clock) -> None:
    await deliver(route, "lce-300", DRLC, "load_control_event", lce(300, 0, 5))
    await replies(joined, DRLC)
    clock.now += 90
    joined.send(DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 0})
    (event,) = without_acks(await replies(joined, DRLC))
    assert (event.fields["start_time"], event.fields["duration_in_minutes"]) == (0, 3)  # 3.5 left: down
    clock.now += 180  # 30 s left: re-issuing it could only make a device overrun
    joined.send(DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 0})
    (answer,) = without_acks(await replies(joined, DRLC))
    assert (answer.command, answer.fields["status"]) == ("default_response", 0x8B)


async def test_get_block_periods_answers_stored_periods_or_not_found(route, joined, clock) -> None:
    joined.send(PRICE, "get_block_periods", {"start_time": 0, "number_of_events": 0})
    (answer,) = await replies(joined, PRICE)
    assert (answer.command, answer.fields) == ("default_response", {"command_id": 0x03, "status": 0x8B})
    await deliver(route, "bp-1", PRICE, "publish_block_period", {
        "provider_id": 7, "issuer_event_id": 41, "block_period_start_time": utc_from_unix(clock.now),
        "block_period_duration": 1440, "number_of_price_tiers": 2, "number_of_block_thresholds": 1,
        "block_period_control": 0})
    await replies(joined, PRICE)
    clock.now += 3600
    joined.send(PRICE, "get_block_periods", {"start_time": 0, "number_of_events": 0})
    (period,) = await replies(joined, PRICE)
    assert period.command == "publish_block_period"
    assert (period.fields["issuer_event_id"], period.fields["block_period_duration"]) == (41, 1440)


async def test_get_message_cancellation_answers_cancel_all_messages(route, joined, clock) -> None:
    ask = encode_frame(MESSAGING, "get_message_cancellation", {"earliest_implementation_time": 0},
                       tsn=9, se_version="1.2")
    joined._uplink(MESSAGING, ask)  # an SE 1.2 device: the request exists only in 1.2
    (answer,) = await replies(joined, MESSAGING)
    assert (answer.command, answer.fields["status"]) == ("default_response", 0x8B)
    await deliver(route, "text-1", MESSAGING, "display_message", {
        "message_id": 5, "message_control": 0, "start_time": 0, "duration_in_minutes": 60, "message": "hi"})
    at = utc_from_unix(clock.now + 60)
    await deliver(route, "cancel-all", MESSAGING, "cancel_all_messages", {"implementation_date_time": at},
                  se_version="1.2")
    await replies(joined, MESSAGING)
    joined._uplink(MESSAGING, ask)
    (cancel,) = await replies(joined, MESSAGING)
    assert (cancel.command, cancel.tsn, cancel.fields) == ("cancel_all_messages", 9, {"implementation_date_time": at})
    joined.send(MESSAGING, "get_last_message", {})
    (still,) = await replies(joined, MESSAGING)
    assert still.command == "display_message"  # the cancellation takes effect at its time
    clock.now += 61
    joined.send(MESSAGING, "get_last_message", {})
    (gone,) = await replies(joined, MESSAGING)
    assert (gone.command, gone.fields["status"]) == ("default_response", 0x8B)


async def test_time_status_and_time(route, joined, clock) -> None:
    joined.send(TIME, "read_attributes", {"attribute_ids": [0, 1, 8, 9]})
    (response,) = await replies(joined, TIME)
    values = {r["attribute_id"]: r.get("value") for r in response.fields["records"]}
    assert values[1] == 0x0B  # Master | Synchronized | Superseding: the one value the simulated meter sends too
    assert values[0] == values[8] == utc_from_unix(clock.now)
    assert values[9] == values[0] + 86_400


async def join(route: RadioRoute, emulator: NcpEmulator, peer: ClientDevice, request_id: str) -> None:
    emulator.pair(peer)
    result = await route.provision(ProvisioningRequest(
        request_id, ESI, ProvisioningKind.PROVISION_DEVICE, eui64=eui64_of(peer),
        link_key=parse_install_code(peer.install_code.hex()).link_key, join_window_s=86_400))
    assert result.outcome is SubmitOutcome.ACCEPTED
    await next_of(route, ProvisioningUpdate, request_id=request_id, state=ProvisioningState.JOINED)


async def test_two_identical_thermostats_run_the_same_event(emulator: NcpEmulator) -> None:
    """Issue 13's probe through the route contract: 201 replaces 200 for every capable device; a
    thermostat that joins afterwards and asks GetScheduledEvents is given 201 only."""
    route = RadioRoute(RadioConfig(device=emulator.path, use_thread=False, reconnect_min_s=0.05), ESI)
    await route.start()
    try:
        first = display(EUI, CODE)
        await join(route, emulator, first, "join-1")
        start = utc_from_unix(time.time() + 600)
        for iid, offset in ((200, 0), (201, 300)):
            op = operation(f"lce-{iid}", CAPABLE_DEVICES, OperationKind.LOAD_CONTROL, "drlc", "load_control_event",
                           lce(iid, start + offset, 60))
            [accepted] = await route.submit([op])
            assert accepted.outcome is SubmitOutcome.ACCEPTED
            await next_of(route, DeviceResponse, command="report_event_status", eui64=EUI)
        second = display("00:0d:6f:00:0a:90:69:e8", "00112233445566778899AABBCCDDEEFF528F", asks=True)
        await join(route, emulator, second, "join-2")
        heard = without_acks(await replies(second, DRLC, settle=1.5))
        assert [(f.command, f.fields.get("issuer_event_id")) for f in heard] == [("load_control_event", 201)]
    finally:
        await route.close()
