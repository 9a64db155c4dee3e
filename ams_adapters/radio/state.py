"""Where the radio route keeps what must survive a restart: the outbound ids it has handed to the
coordinator (with their outcome) and the HAN's device inventory.

The route only knows this small protocol. The gateway implements it on its own database
(gateway/store/route_state.py), so the inventory technicians and the API see is the gateway's,
not zigpy's SQLite file; `MemoryRouteState` serves tests of the route alone and one-off CLI use.
Dependencies stay one way: the gateway imports this module, never the reverse.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import Protocol, runtime_checkable


class OutboundState(enum.StrEnum):
    QUEUED = "queued"  # accepted, not yet handed to the coordinator: safe to queue again
    SENDING = "sending"  # handed to the coordinator; if the process dies now the outcome is unknown
    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self not in (OutboundState.QUEUED, OutboundState.SENDING)


class DeviceState(enum.StrEnum):
    """The same values as gateway.domain.model.DeviceStatus (plus FAILED)."""

    PROVISION_REQUESTED = "provision_requested"
    FIND_PENDING = "find_pending"
    JOINED = "joined"
    REMOVED = "removed"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class OutboundRecord:
    outbound_id: str
    eui64: str
    state: OutboundState
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class DeviceRecord:
    eui64: str  # as zigpy prints it: 00:0d:6f:00:0a:90:69:e7
    state: DeviceState
    updated_at: float  # Unix seconds
    nwk: int | None = None
    reason: str | None = None
    device_type: str | None = None


@runtime_checkable
class RouteStateStore(Protocol):
    """What the radio route persists, for the one premise (ESI) its coordinator serves."""

    async def outbound(self, outbound_id: str) -> OutboundRecord | None:
        """The record of an outbound id, or None if the route never accepted it."""
        ...

    async def record_outbound(
        self, outbound_id: str, eui64: str, state: OutboundState, reason: str | None = None
    ) -> None:
        """Insert or update the record; a final state is never replaced by an earlier one."""
        ...

    async def pending_outbound(self) -> list[OutboundRecord]:
        """Records still QUEUED or SENDING (what a killed process left behind)."""
        ...

    async def upsert_device(
        self,
        eui64: str,
        state: DeviceState,
        *,
        nwk: int | None = None,
        reason: str | None = None,
        device_type: str | None = None,
        at: float | None = None,
    ) -> None: ...

    async def devices(self, *, include_removed: bool = False) -> list[DeviceRecord]: ...

    async def device(self, eui64: str) -> DeviceRecord | None: ...

    async def forget_devices(self) -> int:
        """Every device becomes REMOVED, reason "HAN decommissioned" (kept for history); the
        number of devices that were present."""
        ...


class MemoryRouteState:
    """RouteStateStore in memory: for tests of the route alone; forgets everything on exit."""

    def __init__(self) -> None:
        self._outbound: dict[str, OutboundRecord] = {}
        self._devices: dict[str, DeviceRecord] = {}

    async def outbound(self, outbound_id: str) -> OutboundRecord | None:
        return self._outbound.get(outbound_id)

    async def record_outbound(
        self, outbound_id: str, eui64: str, state: OutboundState, reason: str | None = None
    ) -> None:
        old = self._outbound.get(outbound_id)
        if old is not None and old.state.final:
            return
        self._outbound[outbound_id] = OutboundRecord(outbound_id, eui64, state, reason)

    async def pending_outbound(self) -> list[OutboundRecord]:
        return [r for r in self._outbound.values() if not r.state.final]

    async def upsert_device(
        self,
        eui64: str,
        state: DeviceState,
        *,
        nwk: int | None = None,
        reason: str | None = None,
        device_type: str | None = None,
        at: float | None = None,
    ) -> None:
        old = self._devices.get(eui64)
        self._devices[eui64] = DeviceRecord(
            eui64,
            state,
            time.time() if at is None else at,
            nwk if nwk is not None else (old.nwk if old else None),
            reason,
            device_type or (old.device_type if old else None),
        )

    async def devices(self, *, include_removed: bool = False) -> list[DeviceRecord]:
        return [d for d in self._devices.values() if include_removed or d.state is not DeviceState.REMOVED]

    async def device(self, eui64: str) -> DeviceRecord | None:
        return self._devices.get(eui64)

    async def forget_devices(self) -> int:
        present = [d for d in self._devices.values() if d.state is not DeviceState.REMOVED]
        for d in present:
            self._devices[d.eui64] = dataclasses.replace(
                d, state=DeviceState.REMOVED, nwk=None, reason="HAN decommissioned", updated_at=time.time()
            )
        return len(present)
