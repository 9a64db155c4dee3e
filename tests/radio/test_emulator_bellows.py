"""The real bellows ControllerApplication against the NCP emulator, over a pty and over TCP."""

from __future__ import annotations

import asyncio
import contextlib

import bellows.types as t
import pytest
import zigpy.exceptions
import zigpy.types as zt
import zigpy.zcl.foundation as zcl_f
from bellows.zigbee.application import ControllerApplication

from simulators.ncp import JoinResult, NcpEmulator, load_profile
from tests.radio.conftest import (
    IHD_CODE,
    IHD_EUI64,
    bellows_config,
    install_code_key,
    start_app,
)
from tests.radio.peers import MESSAGING, DisplayPeer, display_message, message_confirmation

SE_PROFILE = 0x0109
ESI_ENDPOINT = 10


async def join_ihd(app, events, emulator, code=IHD_CODE):  # type: ignore[no-untyped-def]
    ihd = DisplayPeer(IHD_EUI64, code)
    await app.permit_with_link_key(zt.EUI64.convert(IHD_EUI64), install_code_key(IHD_CODE), time_s=60)
    result = emulator.join(ihd)
    return ihd, result


async def test_forms_network_over_pty_with_profile_identity(emulator, app_on_pty):
    app, _ = app_on_pty
    info = app.state.node_info
    assert (info.manufacturer, info.model) == ("Nabu Casa", "SkyConnect v1.0")
    assert info.version == "7.4.4.0 build 0"
    assert info.ieee == zt.EUI64.convert("00:0d:6f:ff:fe:a1:b2:c3")
    assert app.state.network_info.channel == 15
    assert app.state.network_info.pan_id == 0x1A62
    assert emulator.ncp.nvram.formed
    assert "formNetwork" in emulator.ncp.commands_received
    # bellows registers endpoints on connect only; the resets of the formation wipe them on
    # the NCP (as on real firmware) until the next start, which needs no formation.
    await app.shutdown()
    emulator.ncp.commands_received.clear()
    app2, _ = await start_app(emulator.path, auto_form=False)
    try:
        assert "formNetwork" not in emulator.ncp.commands_received
        assert emulator.ncp.stack.endpoints[ESI_ENDPOINT][0] == SE_PROFILE
        assert app2.state.network_info.pan_id == 0x1A62
    finally:
        await app2.shutdown()


async def test_install_code_join_right_and_wrong_code(emulator, app_on_pty):
    app, events = app_on_pty
    ihd, result = await join_ihd(app, events, emulator)
    assert result is JoinResult.JOINED
    device = await asyncio.wait_for(events.joined.get(), 5)
    assert device.ieee == zt.EUI64.convert(IHD_EUI64)
    assert ihd.joined.is_set()
    # bellows used importTransientKey and the install-code TC policy (v13 path)
    assert "importTransientKey" in emulator.ncp.commands_received
    policy = emulator.ncp.stack.policies[t.EzspPolicyId.TRUST_CENTER_POLICY]
    assert policy & t.EzspDecisionBitmask.JOINS_USE_INSTALL_CODE_KEY

    impostor = DisplayPeer("00:0d:6f:00:0a:90:69:e8", "00112233445566778899AABBCCDDEEFF528F")
    assert emulator.join(impostor) is JoinResult.NO_KEY
    await app.permit_with_link_key(zt.EUI64.convert(impostor.eui64), install_code_key(IHD_CODE), time_s=60)
    assert emulator.join(impostor) is JoinResult.WRONG_KEY
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(events.joined.get(), 0.5)
    assert impostor.eui64 not in {str(ieee) for ieee in app.devices}


async def test_join_refused_when_not_permitted(emulator, app_on_pty):
    assert emulator.join(DisplayPeer(IHD_EUI64, IHD_CODE)) is JoinResult.NOT_PERMITTED


async def test_raw_se_frame_acked_and_confirmation_comes_back(emulator, app_on_pty):
    app, events = app_on_pty
    ihd, _ = await join_ihd(app, events, emulator)
    device = await asyncio.wait_for(events.joined.get(), 5)
    frame = display_message(tsn=7, message_id=0x1234, text="Peak at 5pm")
    status, _ = await app.request(
        device,
        SE_PROFILE,
        MESSAGING,
        ESI_ENDPOINT,
        1,
        7,
        frame,
        expect_reply=False,
        ask_for_ack=True,
        aps_encryption=True,
    )
    assert status == zcl_f.Status.SUCCESS
    assert await asyncio.wait_for(ihd.received.get(), 2) == (MESSAGING, frame)
    while True:
        dev, profile, cluster, src_ep, dst_ep, data = await asyncio.wait_for(events.messages.get(), 5)
        if profile == SE_PROFILE:
            break
    assert (dev, cluster, src_ep, dst_ep) == (device, MESSAGING, 1, ESI_ENDPOINT)
    assert data == message_confirmation(7, 0x1234, 1000)
    sent = [c for c in emulator.ncp.commands_received if c == "sendUnicast"]
    assert sent


async def test_send_to_powered_off_device_is_a_delivery_failure(emulator, app_on_pty):
    app, events = app_on_pty
    ihd, _ = await join_ihd(app, events, emulator)
    device = await asyncio.wait_for(events.joined.get(), 5)
    emulator.set_reachable(ihd, False)
    with pytest.raises(zigpy.exceptions.DeliveryError) as info:
        await app.request(
            device,
            SE_PROFILE,
            MESSAGING,
            ESI_ENDPOINT,
            1,
            8,
            display_message(tsn=8, message_id=1, text="x"),
            expect_reply=False,
            ask_for_ack=True,
            aps_encryption=True,
        )
    assert info.value.status == t.sl_Status.ZIGBEE_DELIVERY_FAILED
    assert ihd.received.empty()


async def test_device_leaving_is_reported(emulator, app_on_pty):
    app, events = app_on_pty
    ihd, _ = await join_ihd(app, events, emulator)
    await asyncio.wait_for(events.joined.get(), 5)
    assert emulator.leave(ihd)
    left = await asyncio.wait_for(events.left.get(), 5)
    assert left.ieee == zt.EUI64.convert(IHD_EUI64)
    assert not ihd.send(MESSAGING, message_confirmation(1, 1, 1))  # no longer heard


async def test_backup_restored_onto_another_stick(tmp_path):
    first = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await first.serve_pty()
    app, _ = await start_app(first.path)
    backup = await app.backups.create_backup(load_devices=True)
    await app.shutdown()
    await first.close()

    second = NcpEmulator(load_profile("emberznet-7.3-mg21"))
    await second.serve_pty()
    try:
        app2 = ControllerApplication(bellows_config(second.path))
        await app2.connect()
        await app2.backups.restore_backup(backup)
        await app2.shutdown()
        nv = second.ncp.nvram
        assert nv.formed
        assert nv.eui64 == first.ncp.nvram.eui64  # the new stick took over the old identity
        assert nv.parameters.panId == 0x1A62
        assert nv.parameters.extendedPanId == first.ncp.nvram.parameters.extendedPanId
        assert nv.security.networkKey == first.ncp.nvram.security.networkKey

        app3, _ = await start_app(second.path, auto_form=False)
        assert app3.state.network_info.network_key.key == backup.network_info.network_key.key
        assert app3.state.node_info.model == "BRD4180A"
        await app3.shutdown()
    finally:
        await second.close()


async def test_startup_form_and_send_over_tcp():
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emu.serve_tcp()
    app = None
    try:
        assert emu.path.startswith("socket://127.0.0.1:")
        app, events = await start_app(emu.path)
        assert emu.ncp.nvram.formed
        _ihd, result = await join_ihd(app, events, emu)
        assert result is JoinResult.JOINED
        device = await asyncio.wait_for(events.joined.get(), 5)
        status, _ = await app.request(
            device,
            SE_PROFILE,
            MESSAGING,
            ESI_ENDPOINT,
            1,
            9,
            display_message(tsn=9, message_id=9, text="tcp"),
            expect_reply=False,
            ask_for_ack=True,
            aps_encryption=True,
        )
        assert status == zcl_f.Status.SUCCESS
    finally:
        if app is not None:
            with contextlib.suppress(Exception):
                await app.shutdown()
        await emu.close()
