"""The radio tests' SE device: the simulators' in-home display with a DRLC client (firmware profile
`silabs-ihd-drlc`, the one `hangw sim ncp --device` runs) on the wall clock, watched: every frame
it hears is put in `device.frames`, decoded."""

from __future__ import annotations

import asyncio
import dataclasses

from simulators.addressing import eui64_from_str, eui64_str
from simulators.client_device import ClientDevice
from simulators.clock import RealClock
from simulators.factory import make_device
from simulators.profiles import load_profiles
from zigbee_se import parse_install_code

DISPLAY = load_profiles()["silabs-ihd-drlc"]


def display(eui64: str, install_code: str, *, asks: bool = False, binds: bool = False) -> ClientDevice:
    """`asks`: after joining, read the ESI's time and ask for what was missed (GetLastMessage,
    GetCurrentPrice, GetScheduledEvents); `binds`: register with the ESI first (Match_Desc, Bind_req).
    Without either the display only answers what it is sent, so a test hears only its own traffic."""
    profile = dataclasses.replace(DISPLAY, requests_after_join=asks, binds_to_esi=binds)
    device = make_device(profile, eui64_from_str(eui64), parse_install_code(install_code).code, RealClock())
    device.frames = asyncio.Queue()
    return device


def eui64_of(device: ClientDevice) -> str:
    """The device's EUI-64 as the route and the API print it."""
    return eui64_str(device.eui64)


async def registered(device: ClientDevice, timeout: float = 10) -> None:
    """Until the device has found the ESI and sent its Bind_reqs."""
    assert device.registration is not None, "a display built with binds=True registers"
    async with asyncio.timeout(timeout):
        while not device.registration.registered:
            await asyncio.sleep(0.02)
