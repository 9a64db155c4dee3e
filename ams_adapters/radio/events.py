"""What the radio takes and reports per device, below the route contract.

Submitting answers with the contract's own SubmitResult (ams_adapters/contract.py); what happened
to a frame on the air comes later on the event stream as a DeliveryResult for that device,
together with device frames, joins, leaves and coordinator reachability. The contract route
(contract_route.py) turns these per-device events into the contract's per-premise ones.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


@dataclasses.dataclass(frozen=True)
class OutboundFrame:
    """A ZCL frame for one device. `idempotent`: safe to send again if its outcome is unknown
    (e.g. a re-published price); a text message or an event is not, and is never repeated."""

    outbound_id: str
    eui64: str
    cluster_id: int
    zcl_frame: bytes
    idempotent: bool = False
    expires_at: float | None = None  # Unix seconds: never sent after this, reported EXPIRED


class Delivery(enum.Enum):
    DELIVERED = "delivered"  # the device's APS acknowledgement reached the coordinator
    FAILED = "failed"  # the coordinator reported a failure (no route, no ACK, …)
    UNKNOWN = "unknown"  # the coordinator went away or timed out mid-send: not repeated
    EXPIRED = "expired"  # its expiry passed while it waited (coordinator unreachable)


@dataclasses.dataclass(frozen=True)
class DeliveryResult:
    outbound_id: str
    eui64: str
    outcome: Delivery
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class DeviceFrame:
    """A frame from a device on profile 0x0109, decoded with zigbee_se when it decodes."""

    eui64: str
    cluster_id: int
    zcl_frame: bytes
    command: str | None
    fields: dict[str, Any] | None
    decode_error: str | None = None
    lqi: int | None = None
    rssi: int | None = None
    aps_encrypted: bool = False


@dataclasses.dataclass(frozen=True)
class DeviceAssociated:
    """The trust center let the device in; zigpy is about to interview it."""

    eui64: str
    nwk: int


@dataclasses.dataclass(frozen=True)
class DeviceJoined:
    eui64: str
    nwk: int


@dataclasses.dataclass(frozen=True)
class DeviceJoinFailed:
    eui64: str
    reason: str


@dataclasses.dataclass(frozen=True)
class DeviceLeft:
    eui64: str


@dataclasses.dataclass(frozen=True)
class DeviceBound:
    """A device bound (or unbound) one of its SE client clusters to the ESI's endpoint: it wants
    unsolicited updates of that cluster (SE registration). The NCP's stack keeps the binding."""

    eui64: str
    cluster_id: int
    endpoint: int
    bound: bool = True


@dataclasses.dataclass(frozen=True)
class CoordinatorUnreachable:
    reason: str


@dataclasses.dataclass(frozen=True)
class CoordinatorReachable:
    manufacturer: str | None
    model: str | None
    firmware: str | None


@dataclasses.dataclass(frozen=True)
class CbkeRequested:
    """A device tried SE key establishment (cluster 0x0800), which this route does not support."""

    eui64: str


# What the coordinator session reports, per device; the radio route (route.py) turns these into the
# contract's per-premise InboundEvent.
RadioEvent = (
    DeliveryResult
    | DeviceFrame
    | DeviceAssociated
    | DeviceJoined
    | DeviceJoinFailed
    | DeviceLeft
    | DeviceBound
    | CoordinatorUnreachable
    | CoordinatorReachable
    | CbkeRequested
)
