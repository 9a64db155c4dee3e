"""The radio route end to end: real bellows, the NCP emulator over a pty (and TCP), an SE device."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import zigpy.types as zt

from ams_adapters.contract import SubmitOutcome
from ams_adapters.radio import (
    CbkeNotSupported,
    CbkeRequested,
    CoordinatorReachable,
    CoordinatorSession,
    CoordinatorUnreachable,
    Delivery,
    DeliveryResult,
    DeviceFrame,
    DeviceJoined,
    DeviceJoinFailed,
    DeviceLeft,
    OutboundFrame,
    RadioConfig,
    RadioConfigError,
)
from simulators.client_device import ClientDevice
from simulators.device import DRLC, KEY_ESTABLISHMENT, MESSAGING, PRICE, TIME
from simulators.ncp import JoinResult, NcpEmulator, load_profile
from tests.radio.devices import display, eui64_of
from zigbee_se import InstallCodeError, decode_frame, encode_frame

EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
OTHER_CODE = "00112233445566778899AABBCCDDEEFF528F"


def text(outbound_id: str, message_id: int, body: str, eui64: str = EUI) -> OutboundFrame:
    frame = encode_frame(
        "messaging",
        "display_message",
        {
            "message_id": message_id,
            "message_control": 0x80,
            "start_time": 0,
            "duration_in_minutes": 60,
            "message": body,
        },
        tsn=message_id % 256,
    )
    return OutboundFrame(outbound_id, eui64, MESSAGING, frame)


async def wait_for(route: CoordinatorSession, kind: type, timeout: float = 5, **match: Any) -> Any:
    """The next event of a kind (and matching fields); other events are skipped."""
    async with asyncio.timeout(timeout):
        while True:
            event = await route.next_event()
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in match.items()):
                return event


async def next_command(device: ClientDevice, command: str, cluster_id: int | None = None, timeout: float = 3) -> Any:
    """The next frame the device receives with this command (and cluster); others are skipped."""
    async with asyncio.timeout(timeout):
        while True:
            cluster, frame = await device.frames.get()
            if frame.command == command and cluster_id in (None, cluster):
                return cluster, frame


async def permit_open(emulator: NcpEmulator) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        while emulator.ncp.stack.permit_until <= loop.time():
            await asyncio.sleep(0.005)


async def provision(
    route: CoordinatorSession, emulator: NcpEmulator, device: ClientDevice, code: str = CODE, window: int = 30
) -> Any:
    task = asyncio.create_task(route.provision_device(eui64_of(device), code, window))
    await permit_open(emulator)
    result = emulator.join(device)
    return result, await task


@pytest.fixture
async def emulator() -> AsyncIterator[NcpEmulator]:
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emu.serve_pty()
    yield emu
    await emu.close()


@pytest.fixture
async def route(emulator: NcpEmulator) -> AsyncIterator[CoordinatorSession]:
    r = CoordinatorSession(RadioConfig(device=emulator.path, use_thread=False, reconnect_min_s=0.05))
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def joined(route: CoordinatorSession, emulator: NcpEmulator) -> ClientDevice:
    device = display(EUI, CODE)
    result, outcome = await provision(route, emulator, device)
    assert result is JoinResult.JOINED
    assert outcome == DeviceJoined(eui64=EUI, nwk=outcome.nwk)
    return device


def test_config_errors_name_field_value_and_limit() -> None:
    with pytest.raises(RadioConfigError) as info:
        RadioConfig(device="/dev/ttyUSB0", channel=30)
    assert (info.value.field, info.value.value) == ("channel", 30)
    with pytest.raises(RadioConfigError, match="baudrate"):
        RadioConfig(device="/dev/ttyUSB0", baudrate=1200)
    with pytest.raises(RadioConfigError, match="host and port"):
        RadioConfig(device="socket://coordinator")


async def test_forms_reports_reachable_and_provisions(route, emulator, joined) -> None:
    reachable = await wait_for(route, CoordinatorReachable)
    assert (reachable.manufacturer, reachable.model) == ("Nabu Casa", "SkyConnect v1.0")
    assert emulator.ncp.nvram.formed
    assert await wait_for(route, DeviceJoined, eui64=EUI)
    assert [d["eui64"] for d in route.zigpy_devices()] == [EUI]
    inventory = [(d.eui64, d.state.value, d.device_type) for d in await route.inventory()]
    assert inventory == [(EUI, "joined", "in_home_display")]


async def test_wrong_install_code_times_out_and_bad_crc_is_refused(route, emulator) -> None:
    with pytest.raises(InstallCodeError, match="CRC"):
        await route.provision_device(EUI, CODE[:-4] + "0000", 30)
    impostor = display(EUI, OTHER_CODE)
    result, outcome = await provision(route, emulator, impostor, window=1)
    assert result is JoinResult.WRONG_KEY
    assert isinstance(outcome, DeviceJoinFailed) and "no join within 1s" in outcome.reason
    assert route.zigpy_devices() == []
    [failed] = await route.inventory()
    assert failed.state.value == "failed" and "no join within" in (failed.reason or "")


async def test_text_price_and_event_with_device_answers(route, emulator, joined) -> None:
    price = encode_frame(
        "price",
        "publish_price",
        {
            "provider_id": 1,
            "rate_label": "peak",
            "issuer_event_id": 7,
            "current_time": 0,
            "unit_of_measure": 0,
            "currency": 840,
            "price_trailing_digit": 2,
            "price_tier": 1,
            "number_of_price_tiers": 0,
            "register_tier": 1,
            "start_time": 0,
            "duration_in_minutes": 60,
            "price": 1234,
            "price_control": 1,
        },
        tsn=2,
    )
    event = encode_frame(
        "drlc",
        "load_control_event",
        {
            "issuer_event_id": 9,
            "device_class": 0x0FFF,
            "utility_enrollment_group": 0,
            "start_time": 0,
            "duration_in_minutes": 30,
            "criticality_level": 1,
            "event_control": 0,
        },
        tsn=3,
    )
    results = await route.submit(
        [
            text("t1", 1, "Peak at 5pm"),
            OutboundFrame("p1", EUI, PRICE, price),
            OutboundFrame("e1", EUI, DRLC, event),
        ]
    )
    assert [r.outcome for r in results] == [SubmitOutcome.ACCEPTED] * 3

    answers = {}
    delivered = set()
    wanted = {"message_confirmation", "price_acknowledgement", "report_event_status"}
    async with asyncio.timeout(10):
        # (the display also answers the text with a Default Response SUCCESS, as SE devices do)
        while not wanted <= answers.keys() or len(delivered) < 3:
            ev = await route.next_event()
            if isinstance(ev, DeliveryResult):
                assert ev.outcome is Delivery.DELIVERED, ev
                delivered.add(ev.outbound_id)
            elif isinstance(ev, DeviceFrame):
                assert ev.aps_encrypted and ev.eui64 == EUI
                answers[ev.command] = ev.fields
    assert answers["message_confirmation"]["message_id"] == 1
    assert answers["price_acknowledgement"]["issuer_event_id"] == 7
    assert answers["report_event_status"]["issuer_event_id"] == 9
    # the device got the ESI's Default Response SUCCESS to each answer
    statuses = []
    while not joined.frames.empty():
        _cluster, frame = joined.frames.get_nowait()
        if frame.command == "default_response":
            statuses.append(frame.fields["status"])
    for _ in range(3 - len(statuses)):
        _cluster, frame = await asyncio.wait_for(joined.frames.get(), 2)
        if frame.command == "default_response":
            statuses.append(frame.fields["status"])
    assert statuses == [0, 0, 0]


async def test_esi_answers_time_and_get_last_message(route, emulator, joined) -> None:
    await route.submit([text("t1", 5, "hello")])
    await wait_for(route, DeliveryResult, outbound_id="t1")
    await next_command(joined, "default_response")  # the ESI's answer to the confirmation
    joined.send(TIME, "read_attributes", {"attribute_ids": [0, 1]})
    cluster, frame = await next_command(joined, "read_attributes_response")
    assert cluster == TIME
    assert [r["status"] for r in frame.fields["records"]] == [0, 0]
    joined.send(MESSAGING, "get_last_message", {})
    _cluster, frame = await next_command(joined, "display_message")
    assert frame.fields["message_id"] == 5 and frame.fields["message"] == "hello"
    joined.send(PRICE, "get_current_price", {"command_options": 0})
    _cluster, frame = await next_command(joined, "default_response", PRICE)
    assert frame.fields["status"] == 0x8B  # NOT_FOUND: no price was sent


async def test_resubmitted_outbound_id_is_not_sent_twice(route, emulator, joined) -> None:
    first = await route.submit([text("same", 1, "once")])
    again = await route.submit([text("same", 1, "once")])
    assert first == again
    await wait_for(route, DeliveryResult, outbound_id="same")
    await asyncio.sleep(0.2)
    displays = []
    while not joined.frames.empty():
        _c, frame = joined.frames.get_nowait()
        if frame.command == "display_message":
            displays.append(frame)
    assert len(displays) == 1


async def test_send_to_powered_off_device_fails_and_leaving_is_reported(route, emulator, joined) -> None:
    emulator.set_reachable(joined, False)
    await route.submit([text("gone", 2, "anyone?")])
    result = await wait_for(route, DeliveryResult, outbound_id="gone")
    assert result.outcome is Delivery.FAILED and "DELIVERY_FAILED" in result.reason
    emulator.set_reachable(joined, True)
    await route.remove_device(EUI)
    assert await wait_for(route, DeviceLeft, eui64=EUI)


async def test_device_leaving_on_its_own(route, emulator, joined) -> None:
    assert emulator.leave(joined)
    assert await wait_for(route, DeviceLeft, eui64=EUI)


async def test_rejects_bad_frames_and_cbke(route, emulator, joined) -> None:
    [bad] = await route.submit([OutboundFrame("bad", EUI, MESSAGING, b"\x09\x01")])
    assert bad.outcome is SubmitOutcome.REJECTED and "zcl_frame" in bad.reason
    [big] = await route.submit([OutboundFrame("big", EUI, MESSAGING, bytes(100))])
    assert big.outcome is SubmitOutcome.REJECTED and "limit 73" in big.reason
    with pytest.raises(CbkeNotSupported, match="install code"):
        await route.provision_device(EUI, CODE, 30, cbke=True)
    joined._uplink(KEY_ESTABLISHMENT, bytes([0x01, 0x01, 0x00, 0x01, 0x00]))
    assert await wait_for(route, CbkeRequested, eui64=EUI)


async def test_ncp_reset_mid_stream_nothing_lost_or_repeated(route, emulator, joined) -> None:
    frames = [text(f"m{i}", i, f"message {i}") for i in range(1, 7)]
    await route.submit(frames[:3])
    await wait_for(route, DeliveryResult, outbound_id="m1")
    emulator.reset_ncp()
    await route.submit(frames[3:])
    outcomes: dict[str, Delivery] = {"m1": Delivery.DELIVERED}
    seen: list[type] = []
    async with asyncio.timeout(15):
        while len(outcomes) < 6:
            ev = await route.next_event()
            seen.append(type(ev))
            if isinstance(ev, DeliveryResult):
                assert ev.outbound_id not in outcomes, "reported twice"
                outcomes[ev.outbound_id] = ev.outcome
    assert CoordinatorUnreachable in seen and CoordinatorReachable in seen
    await asyncio.sleep(0.3)
    shown = []
    while not joined.frames.empty():
        _c, frame = joined.frames.get_nowait()
        if frame.command == "display_message":
            shown.append(frame.fields["message_id"])
    assert len(shown) == len(set(shown)), "a message reached the device twice"
    delivered = {int(k[1:]) for k, v in outcomes.items() if v is Delivery.DELIVERED}
    assert delivered - {1} <= set(shown)
    # every frame queued after the reset was delivered once the coordinator was back
    assert {4, 5, 6} <= delivered, outcomes
    unknown = [k for k, v in outcomes.items() if v is Delivery.UNKNOWN]
    assert len(unknown) <= 1, outcomes  # at most the one in flight when the NCP reset


async def test_route_over_tcp_resumes_formed_network() -> None:
    pty = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await pty.serve_pty()
    first = CoordinatorSession(RadioConfig(device=pty.path, use_thread=False))
    await first.start()
    await first.stop()
    await pty.close()

    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"), nvram=pty.ncp.nvram)
    await emu.serve_tcp()
    r = CoordinatorSession(RadioConfig(device=emu.path, use_thread=False))
    try:
        await r.start(form=False)
        device = display(EUI, CODE)
        result, outcome = await provision(r, emu, device)
        assert result is JoinResult.JOINED and isinstance(outcome, DeviceJoined)
        await r.submit([text("tcp", 3, "over tcp")])
        delivered = await wait_for(r, DeliveryResult, outbound_id="tcp")
        assert delivered.outcome is Delivery.DELIVERED
        answer = await wait_for(r, DeviceFrame, command="message_confirmation")
        assert decode_frame(MESSAGING, answer.zcl_frame).fields["message_id"] == 3
    finally:
        await r.stop()
        with contextlib.suppress(Exception):
            await emu.close()


async def test_backup_and_restore_through_the_route(route, emulator, joined) -> None:
    backup = await route.backup()
    other = NcpEmulator(load_profile("emberznet-7.3-mg21"))
    await other.serve_pty()
    r2 = CoordinatorSession(RadioConfig(device=other.path, use_thread=False))
    try:
        await r2.start()  # forms its own network first: a new stick out of the box
        await r2.restore(backup)
        node, network = r2.network_info()
        assert str(node.ieee) == str(zt.EUI64.convert("00:0d:6f:ff:fe:a1:b2:c3"))
        assert network.network_key.key == route.network_info()[1].network_key.key
    finally:
        await r2.stop()
        await other.close()


async def test_unplug_and_replug_queued_frames_go_out_once(tmp_path) -> None:
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    link = tmp_path / "ttyNCP"  # a stable name, like /dev/serial/by-id/…
    await emu.serve_pty(link)
    r = CoordinatorSession(RadioConfig(device=str(link), use_thread=False, reconnect_min_s=0.05, reconnect_max_s=0.2))
    try:
        await r.start()
        device = display(EUI, CODE)
        result, _ = await provision(r, emu, device)
        assert result is JoinResult.JOINED
        await emu.unplug()
        await wait_for(r, CoordinatorUnreachable)
        assert not r.reachable
        results = await r.submit([text("while-out-1", 11, "one"), text("while-out-2", 12, "two")])
        assert [x.outcome for x in results] == [SubmitOutcome.ACCEPTED] * 2
        await asyncio.sleep(0.5)  # the route keeps retrying the port meanwhile
        await emu.replug()
        outcomes = {}
        async with asyncio.timeout(15):
            while len(outcomes) < 2:
                event = await r.next_event()
                if isinstance(event, DeliveryResult):
                    outcomes[event.outbound_id] = event.outcome
        assert outcomes == {"while-out-1": Delivery.DELIVERED, "while-out-2": Delivery.DELIVERED}
        shown = []
        while not device.frames.empty():
            _c, frame = device.frames.get_nowait()
            if frame.command == "display_message":
                shown.append(frame.fields["message_id"])
        assert shown == [11, 12]
    finally:
        await r.stop()
        await emu.close()
