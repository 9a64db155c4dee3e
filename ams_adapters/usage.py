"""The route contract's optional capability: read a premise's usage (interval data) (issue 16).

A route that can answers `read_usage(esi_id, start, end)` with the meter's 15-minute interval
reads starting in [start, end): consumption, and generation where the premise has one, and
`read_meter(esi_id)` with an on-demand register read. The simulated routes read the simulated
meters; the head-end adapters (`HeadEndAdapter`) read through their head-end's protocol
(MultiSpeak meter reading, IEC 61968-9 GetMeterReadings, the binary protocol:
ams_adapters/usage_reads.py), the radio route over the HAN (Metering attributes and GetProfile:
ams_adapters/radio/metering.py). A route without the operation (a third-party route written
before it) raises the typed `UsageNotSupported` naming the route when asked.

Plain data only, like the rest of the contract (ams_adapters/contract.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ams_adapters.contract import ContractError, Route


class Channel(enum.StrEnum):
    CONSUMPTION = "consumption"  # delivered to the premise (ESPI flowDirection 1)
    GENERATION = "generation"  # received from it: solar (flowDirection 19)


class Quality(enum.StrEnum):
    ACTUAL = "actual"  # as measured (SMT "-A")
    ESTIMATED = "estimated"  # filled in by the head-end (SMT "-E")
    MISSING = "missing"  # no value: the interval was not read


@dataclass(frozen=True, slots=True)
class UsageRead:
    """One interval of one channel, as the route delivered it."""

    start: int
    """Unix seconds (UTC) at which the interval starts."""
    length_s: int
    channel: Channel
    value_wh: int
    quality: Quality

    def __post_init__(self) -> None:
        if self.length_s <= 0:
            raise ContractError("length_s", self.length_s, "a positive number of seconds")
        if self.value_wh < 0:
            raise ContractError("value_wh", self.value_wh, "0 or more (a channel counts one direction)")


class UsageNotSupported(Exception):
    """The premise's route cannot read usage (it has no such operation yet)."""

    def __init__(self, route: str, why: str) -> None:
        self.route = route
        self.why = why
        super().__init__(f"route {route!r} cannot read usage: {why}")


class UsageUnavailable(Exception):
    """The route has the operation but no reads now (head-end down, meter dark): try again later."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        self.reason = reason
        self.retry_after_s = retry_after_s
        super().__init__(reason)


class UsageAnswerInvalid(UsageUnavailable):
    """A head-end's answer to a read broke its protocol or a limit (a garbled value, an interval
    outside the period asked, more intervals than asked for): names the field, the value and the
    limit. Nothing of the answer is used; what is stored stays as it was, and the read is tried
    again at the next pass (an `UsageUnavailable`, as the head-end may answer soundly then)."""

    def __init__(self, route: str, field: str, value: object, limit: str) -> None:
        self.route = route
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"head-end of route {route!r} answered a read with {field}={value!r}: {limit}")


@runtime_checkable
class UsageRoute(Protocol):
    """A route with the capability; not part of `contract.Route` (routes written before it still
    satisfy the contract). `read_usage()` below asks for it."""

    async def read_usage(self, esi_id: str, start: int, end: int) -> list[UsageRead]: ...


NOT_BUILT = ("reading usage is not supported by this route (it has no read_usage); the head-end routes "
             "(MultiSpeak, IEC 61968-9, the binary protocol), the radio route and the simulated routes read usage")


@dataclass(frozen=True, slots=True)
class MeterRead:
    """A register read of one meter taken now (an on-demand read: a physical read of the meter)."""

    read_at: int
    """Unix seconds (UTC) the reading is for."""
    delivered_wh: int
    """The consumption register (ZigBee CurrentSummationDelivered, MultiSpeak posKWh × 1000)."""
    received_wh: int | None = None
    """The generation register where the meter has one."""
    demand_w: int | None = None
    """Instantaneous (or last interval's) demand where the route reports it."""

    def __post_init__(self) -> None:
        if self.delivered_wh < 0:
            raise ContractError("delivered_wh", self.delivered_wh, "0 or more")
        if self.received_wh is not None and self.received_wh < 0:
            raise ContractError("received_wh", self.received_wh, "0 or more")


@runtime_checkable
class MeterReadRoute(Protocol):
    """A route that can read a meter's register on demand (optional, like `UsageRoute`)."""

    async def read_meter(self, esi_id: str) -> MeterRead: ...


async def read_meter(route: Route, esi_id: str) -> MeterRead:
    """`route.read_meter(...)`, or `UsageNotSupported` for a route that lacks it."""
    if not isinstance(route, MeterReadRoute):
        raise UsageNotSupported(route.capabilities.name, "an on-demand meter read is not supported by this route")
    return await route.read_meter(esi_id)


async def read_usage(route: Route, esi_id: str, start: int, end: int) -> list[UsageRead]:
    """`route.read_usage(...)`, or `UsageNotSupported` for a route that lacks it."""
    if not isinstance(route, UsageRoute):
        raise UsageNotSupported(route.capabilities.name, NOT_BUILT)
    return await route.read_usage(esi_id, start, end)
