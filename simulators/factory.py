"""Build the right device class for a firmware profile."""

from __future__ import annotations

from simulators.client_device import ClientDevice
from simulators.clock import TimerClock
from simulators.ihd import InHomeDisplay
from simulators.load_control import LoadControlDevice
from simulators.profiles import FirmwareProfile
from simulators.thermostat import Thermostat

DEVICE_CLASSES: dict[str, type[ClientDevice]] = {
    "ihd": InHomeDisplay,
    "pct": Thermostat,
    "load_control": LoadControlDevice,
}


def make_device(profile: FirmwareProfile, eui64: bytes, install_code: bytes, clock: TimerClock,
                endpoint: int = 1) -> ClientDevice:
    return DEVICE_CLASSES[profile.device_type](eui64, install_code, profile, clock, endpoint)
