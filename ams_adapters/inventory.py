"""The route contract's optional capability: ask the meter what is on its HAN (issue 13).

A route that can answers `han_inventory(esi_id)` with the meter's own live list of HAN devices —
not the gateway's records: after a meter swap, or when a device stopped answering, the two differ,
and the gateway shows how (gateway/han_inventory.py). Every real route answers it: the head-end
adapters through a status operation in their protocol, the radio route from its coordinator's
device table, the simulated routes from their meters. A route without the method, or one that
cannot answer for a premise, is reported with the typed `InventoryNotSupported`.

Plain data only, like the rest of the contract (ams_adapters/contract.py).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ams_adapters.contract import Route
from ams_adapters.wire.common import HanRegistration


class JoinState(enum.StrEnum):
    """A device as the meter (the premise's ESI) knows it. The values are the gateway's own
    DeviceStatus values for the same states, so the two compare directly."""

    PROVISION_REQUESTED = "provision_requested"  # the meter holds its key; the join window is open
    FIND_PENDING = "find_pending"  # it made first contact; the key check is running
    JOINED = "joined"
    FAILED = "failed"  # the meter refused it (wrong key, window over): `reason` says why


@dataclass(frozen=True, slots=True)
class InventoryDevice:
    eui64: str
    """As zigpy prints it (00:0d:6f:00:0a:bc:de:f0), like `Target.eui64`."""
    join_state: JoinState
    device_type: str | None = None
    """The SE device type the device declared (in_home_display, pct, load_control_device, …)."""
    se_version: str | None = None
    last_seen: float | None = None
    """Unix seconds of the last frame the meter received from it; None if never (or not known)."""
    lqi: int | None = None
    rssi: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HanInventory:
    esi_id: str
    meter_id: str | None
    """The ESI's own identity as it reports it (its EUI-64): a swapped meter answers a new one."""
    taken_at: float
    """Unix seconds at which the meter (or the coordinator) gave this list."""
    devices: tuple[InventoryDevice, ...]


class InventoryNotSupported(Exception):
    """The premise's route cannot report the meter's HAN devices (it has no such operation)."""

    def __init__(self, route: str, why: str) -> None:
        self.route = route
        self.why = why
        super().__init__(f"route {route!r} cannot report the meter's HAN devices: {why}")


class InventoryUnavailable(Exception):
    """The route has the operation but no inventory now: the head-end is busy or down, refused
    the request (`refused`: e.g. it does not know the meter), or the meter did not answer before
    the request expired (`timed_out`)."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None, refused: bool = False,
                 timed_out: bool = False) -> None:
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.refused = refused
        self.timed_out = timed_out
        super().__init__(reason)


@runtime_checkable
class InventoryRoute(Protocol):
    """A route with the capability. Not part of `contract.Route`, so that routes written before
    it (a third-party adapter) still satisfy the contract; `han_inventory()` below asks for it."""

    async def han_inventory(self, esi_id: str) -> HanInventory: ...


async def han_inventory(route: Route, esi_id: str) -> HanInventory:
    """`route.han_inventory(esi_id)`, or `InventoryNotSupported` for a route that lacks it."""
    if not isinstance(route, InventoryRoute):
        raise InventoryNotSupported(route.capabilities.name, "it has no han_inventory operation")
    return await route.han_inventory(esi_id)


def from_registrations(esi_id: str, meter_id: str | None, taken_at: float,
                       registrations: Iterable[HanRegistration]) -> HanInventory:
    """A head-end's (or a simulated meter's) wire-level answer -> the contract's inventory."""
    devices = []
    for r in registrations:
        try:
            state = JoinState(r.state)
        except ValueError as exc:
            raise InventoryUnavailable(
                f"registrationStatus: {r.state!r} for {r.eui64} is not one of "
                f"{[s.value for s in JoinState]}", refused=True) from exc
        devices.append(InventoryDevice(eui64=r.eui64.lower(), join_state=state, device_type=r.device_type,
                                       se_version=r.se_version, last_seen=r.last_seen, lqi=r.lqi, rssi=r.rssi,
                                       reason=r.reason))
    return HanInventory(esi_id, meter_id, taken_at, tuple(sorted(devices, key=lambda d: d.eui64)))
