"""The route (adapter) contract: how the gateway reaches meters, whatever is behind a route — a
TDSP head-end over MultiSpeak, IEC 61968-9 or a binary cellular protocol, the local ZigBee radio, or
the simulated field in tests (DESIGN.md, "Contracts").

A route takes batches of HAN operations and answers each item at once (accepted with the head-end's
reference, rejected with a reason, or retry later); what then happens to it arrives later on the
route's event stream. Routes are idempotent by `outbound_id`: an item submitted again (after a
gateway restart, say) is answered with its first result and never reaches a device twice.

Only plain data crosses this contract: no gateway objects, no simulator objects.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from zigbee_se import DEFAULT_MAX_FRAME_SIZE, SEVersion

MIN_JOIN_WINDOW_S = 24 * 3600
MAX_JOIN_WINDOW_S = 30 * 24 * 3600
"""Join windows of 1 to 30 days, as the AMS provisioning flows allow (DOMAIN.md)."""


class ContractError(ValueError):
    """An operation that no route may accept: names the field, the value and the limit."""

    def __init__(self, field: str, value: Any, limit: str) -> None:
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"{field}: {value!r} is invalid: {limit}")


class TargetKind(enum.StrEnum):
    METER = "meter"  # the meter itself (its ESI), e.g. to publish a price it answers requests with
    DEVICE = "device"  # one joined device, by EUI-64
    CAPABLE_DEVICES = "capable_devices"  # every joined device of the premise that has the cluster


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    eui64: str | None = None
    """EUI-64 as zigpy prints it (00:0d:6f:00:0a:bc:de:f0), for kind DEVICE only."""

    def __post_init__(self) -> None:
        if (self.kind is TargetKind.DEVICE) != (self.eui64 is not None):
            raise ContractError("target.eui64", self.eui64, "given exactly when the target is one device")


METER = Target(TargetKind.METER)
CAPABLE_DEVICES = Target(TargetKind.CAPABLE_DEVICES)


class OperationKind(enum.StrEnum):
    TEXT = "text"
    PRICE = "price"
    LOAD_CONTROL = "load_control"
    CANCEL_TEXT = "cancel_text"
    CANCEL_LOAD_CONTROL = "cancel_load_control"
    CANCEL_ALL_LOAD_CONTROL = "cancel_all_load_control"
    SET_ENROLLMENT_GROUP = "set_enrollment_group"
    """ZCL Write Attributes (server->client) of one device's DRLC client attributes (its utility
    enrollment group, randomization minutes): target DEVICE, carried as a frame only."""


# What every route has always carried: the HAN messages of third parties' requests.
MESSAGE_OPERATIONS: frozenset[OperationKind] = frozenset(OperationKind) - {OperationKind.SET_ENROLLMENT_GROUP}
ALL_OPERATIONS: frozenset[OperationKind] = frozenset(OperationKind)


@dataclass(frozen=True, slots=True)
class HanOperation:
    """One HAN command for one premise: the SE command, its field values and the meter's SE
    version. Semantic interfaces carry the fields as they are (MultiSpeak
    InitiateInHomeDisplayMessage, 61968-9 PanDisplay: the head-end encodes the frame); routes that
    carry frames raw (the radio, the binary cellular protocol, the simulated field) encode it
    from them with `ams_adapters.se_frames.operation_frame`, once per request and SE version.

    `fields` holds the union of what the command's layouts need across SE versions. Operations
    of one request share one `fields` mapping (the frame cache relies on it): never mutate it."""

    outbound_id: str
    esi_id: str
    target: Target
    kind: OperationKind
    cluster_id: int
    command: str
    fields: Mapping[str, Any]
    se_version: SEVersion
    expires_at: float
    """Unix seconds. A route never hands the item on after this; it reports it expired instead."""
    meter_number: str = ""
    tsn: int | None = None
    """The ZCL transaction sequence number the frame carries where the answer is matched by it (a
    device write: global commands have no message or event id); None: the low byte of the
    command's message / issuer event id."""


class ProvisioningKind(enum.StrEnum):
    INITIALIZE_HAN = "initialize_han"
    PROVISION_DEVICE = "provision_device"
    DELETE_DEVICE = "delete_device"
    CLEAR_DEVICES = "clear_devices"
    DECOMMISSION_HAN = "decommission_han"


@dataclass(frozen=True, slots=True)
class ProvisioningRequest:
    request_id: str
    esi_id: str
    kind: ProvisioningKind
    eui64: str | None = None
    link_key: bytes | None = None
    """Derived from the install code by zigbee_se; the install code itself never travels."""
    join_window_s: int | None = None

    def __post_init__(self) -> None:
        needs_device = self.kind in (ProvisioningKind.PROVISION_DEVICE, ProvisioningKind.DELETE_DEVICE)
        if needs_device and not self.eui64:
            raise ContractError("eui64", self.eui64, f"required to {self.kind.value.replace('_', ' ')}")
        if self.kind is ProvisioningKind.PROVISION_DEVICE:
            if self.link_key is None or len(self.link_key) != 16:
                raise ContractError("link_key", self.link_key, "16 bytes (AES-MMO of the install code)")
            window = self.join_window_s
            if window is None or not MIN_JOIN_WINDOW_S <= window <= MAX_JOIN_WINDOW_S:
                raise ContractError("join_window_s", window, "1 to 30 days (86400..2592000 seconds)")


class SubmitOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RETRY_LATER = "retry_later"


@dataclass(frozen=True, slots=True)
class SubmitResult:
    outbound_id: str
    outcome: SubmitOutcome
    reference: str | None = None
    """The head-end's transaction id, when accepted."""
    reason: str | None = None
    retry_after_s: float | None = None


# ------------------------------------------------------------------------------ inbound events


@dataclass(frozen=True, slots=True)
class DeliveredToMeter:
    outbound_id: str
    esi_id: str
    at: float
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    outbound_id: str
    esi_id: str
    at: float
    reason: str
    expired: bool = False
    """True when the route gave up because `expires_at` passed (meter dark, head-end down)."""


@dataclass(frozen=True, slots=True)
class DeviceResponse:
    """A device's answer: MessageConfirmation, PriceAcknowledgement, ReportEventStatus, or any
    other SE frame. `frame` is the raw ZCL frame when the head-end relays it; semantic head-ends
    that only report a status give `command` and `fields` as zigbee_se would have decoded them."""

    esi_id: str
    eui64: str
    cluster_id: int
    at: float
    command: str
    fields: Mapping[str, Any]
    frame: bytes | None = None
    outbound_id: str | None = None


class ProvisioningState(enum.StrEnum):
    REQUESTED = "requested"
    FIND_PENDING = "find_pending"
    JOINED = "joined"
    FAILED = "failed"
    DELETED = "deleted"
    DONE = "done"
    """Extension (issue 6): the meter carried out a HAN initialization, clear or decommission."""


@dataclass(frozen=True, slots=True)
class ProvisioningUpdate:
    request_id: str | None
    esi_id: str
    state: ProvisioningState
    at: float
    eui64: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MeterReachability:
    esi_id: str
    reachable: bool
    at: float


InboundEvent = DeliveredToMeter | DeliveryFailed | DeviceResponse | ProvisioningUpdate | MeterReachability


# ------------------------------------------------------------------------------ capabilities


@dataclass(frozen=True, slots=True)
class MeterCapabilities:
    se_version: SEVersion = SEVersion.V1_1
    max_devices: int = 5
    max_load_control_devices: int = 5
    price_tiers: int = 15


ALL_PROVISIONING: frozenset[ProvisioningKind] = frozenset(ProvisioningKind)


@dataclass(frozen=True, slots=True)
class RouteCapabilities:
    name: str
    batch_size: int = 100
    """Most items the route sends its peer (a head-end) in one send. The route batches itself: a
    caller may hand `Route.submit` any number of items."""
    rate_limit_per_s: float = 100.0
    """Items a second the route sends its peer at most. The route paces itself (a head-end adapter
    with a burst of max(batch_size, rate/10)); what it cannot send soon it answers RETRY_LATER."""
    max_in_flight: int = 1000
    extra: Mapping[str, Any] = field(default_factory=dict)
    max_text_bytes: int | None = None
    """UTF-8 bytes of DisplayMessage text the route's meters take (e.g. 80 on Landis+Gyr modules,
    57 on the other TDSPs' head-ends); None when only the SE frame budget limits it. The gateway
    checks every text against this and the frame budget together before it accepts it
    (`ams_adapters.text_limit`); a route need not check it again."""
    max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE
    """The single-frame budget of the route's SE frames, in bytes (73: APS payload with APS
    encryption, no fragmentation); None when the route's meters fragment long frames."""
    provisioning: frozenset[ProvisioningKind] = frozenset()
    """The provisioning operations `Route.provision` carries out. The gateway refuses any other
    kind for the route's premises when it is asked (problem `route_cannot_provision`), instead of
    accepting an operation the route can never do. Declare only what really reaches the meter."""
    operations: frozenset[OperationKind] = MESSAGE_OPERATIONS
    """The HAN operations `Route.submit` carries. The messages (texts, prices, load control and
    their cancels) by default; a route that can address one device with a frame of the gateway's
    (the radio, the simulated field, a head-end carrying frames raw) adds SET_ENROLLMENT_GROUP.
    The gateway refuses an undeclared kind for the route's premises when it is asked (problem
    `route_cannot_set_enrollment_group`)."""


@runtime_checkable
class Route(Protocol):
    """What every route implements. All methods are coroutines except `capabilities`."""

    @property
    def capabilities(self) -> RouteCapabilities: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities: ...

    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        """One result per item, in order. Never raises for a bad item: rejects it with a reason.
        Any number of items: the route batches and paces what it sends to its peer (its
        capabilities' `batch_size` and `rate_limit_per_s`), and answers RETRY_LATER with
        `retry_after_s` for what it cannot send soon; callers do not batch or throttle."""
        ...

    async def provision(self, request: ProvisioningRequest) -> SubmitResult: ...

    def events(self) -> AsyncIterator[InboundEvent]:
        """The route's inbound events, in the order the route learnt them; one consumer."""
        ...
