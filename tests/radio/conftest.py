"""Fixtures: an emulated coordinator and a real bellows ControllerApplication talking to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import zigpy.types as zt
from bellows.zigbee.application import ControllerApplication

from simulators.ncp import LineFaults, NcpEmulator, load_profile

IHD_EUI64 = "00:0d:6f:00:0a:90:69:e7"
IHD_CODE = "83FED3407A939723A5C639B26916D505C3B5"  # RADIO.md's zigpy test vector


def bellows_config(path: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "device": {"path": path},
        "database_path": None,
        "network": {"channel": 15, "pan_id": 0x1A62},
        "ota": {"enabled": False},
        "backup_enabled": False,
        "topology_scan_enabled": False,
        "use_thread": False,
        "additional_endpoints": [
            {
                "endpoint": 10,
                "profile": 0x0109,
                "device_type": 0x0500,
                "device_version": 0,
                "input_clusters": [0x000A, 0x0700, 0x0701, 0x0702, 0x0703],
                "output_clusters": [],
            }
        ],
    }
    config.update(extra)
    return config


class Events:
    """A zigpy listener recording what the application reports."""

    def __init__(self) -> None:
        self.joined: asyncio.Queue[Any] = asyncio.Queue()
        self.left: asyncio.Queue[Any] = asyncio.Queue()
        self.messages: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.lost: asyncio.Queue[Any] = asyncio.Queue()

    def device_joined(self, device: Any) -> None:
        self.joined.put_nowait(device)

    def device_left(self, device: Any) -> None:
        self.left.put_nowait(device)

    def handle_message(  # noqa: PLR0917 - zigpy calls listeners positionally
        self,
        device: Any,
        profile: int,
        cluster: int,
        src_ep: int,
        dst_ep: int,
        message: bytes,
        *args: Any,
    ) -> None:
        self.messages.put_nowait((device, profile, cluster, src_ep, dst_ep, bytes(message)))

    def connection_lost(self, exc: Any) -> None:
        self.lost.put_nowait(exc)


async def start_app(path: str, *, auto_form: bool = True, **extra: Any) -> tuple[Any, Events]:
    app = await ControllerApplication.new(bellows_config(path, **extra), auto_form=auto_form, start_radio=True)
    events = Events()
    app.add_listener(events)
    return app, events


@pytest.fixture
async def emulator() -> AsyncIterator[NcpEmulator]:
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emu.serve_pty()
    yield emu
    await emu.close()


@pytest.fixture
async def app_on_pty(emulator: NcpEmulator) -> AsyncIterator[tuple[Any, Events]]:
    app, events = await start_app(emulator.path)
    yield app, events
    with contextlib.suppress(Exception):
        await app.shutdown()


def install_code_key(code: str) -> zt.KeyData:
    import zigpy.util

    return zigpy.util.convert_install_code(bytes.fromhex(code))


__all__ = ["IHD_CODE", "IHD_EUI64", "Events", "LineFaults", "bellows_config", "start_app"]
