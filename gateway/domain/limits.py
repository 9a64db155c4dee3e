"""Meter HAN limits (Landis+Gyr, DOMAIN.md): devices per meter and load-control devices per meter."""

from __future__ import annotations

from gateway.domain.model import DeviceStatus

DEVICES_PER_METER = 5
DEVICES_PER_ENHANCED_METER = 10
LOAD_CONTROL_DEVICES_PER_ENHANCED_METER = 8
# Device states that hold one of the meter's slots (failed and removed devices hold none).
SLOT_HOLDERS = (DeviceStatus.PROVISION_REQUESTED, DeviceStatus.FIND_PENDING, DeviceStatus.JOINED,
                DeviceStatus.DELETE_REQUESTED)
# Device types (as registered at provisioning, compared in lower case) that take load-control events.
LOAD_CONTROL_DEVICE_TYPES = frozenset({
    "thermostat", "pct", "load_control", "load_control_device", "load_control_switch", "smart_appliance",
    "water_heater", "pool_pump", "ev_charger", "smart_plug"})


def device_limit(enhanced_meter: bool) -> int:
    return DEVICES_PER_ENHANCED_METER if enhanced_meter else DEVICES_PER_METER


def over_device_limit(enhanced_meter: bool, devices: int, load_control_devices: int,
                      load_control: bool) -> str | None:
    """Why a meter cannot serve its HAN as registered, or None. A premise gets over its limit when
    its meter is swapped for a smaller one (e.g. enhanced -> standard) with the devices still
    registered: which of them the meter keeps is then unknown, so the gateway sends nothing there
    until the devices are cleaned up. Load control has its own limit on enhanced meters."""
    limit = device_limit(enhanced_meter)
    if devices > limit:
        return (f"device_limit: {devices} devices registered, the "
                f"{'enhanced' if enhanced_meter else 'standard'} meter serves at most {limit}")
    if load_control and enhanced_meter and load_control_devices > LOAD_CONTROL_DEVICES_PER_ENHANCED_METER:
        return (f"device_limit: {load_control_devices} load-control devices registered, the meter serves at most "
                f"{LOAD_CONTROL_DEVICES_PER_ENHANCED_METER}")
    return None
