"""TDSP capability profiles: which transport, which limits (firmware_fixtures/headends/*.toml).

A profile is data: text length (UTF-8 bytes) and frame budget, price tiers, batch size, rate
limit, in-flight bound, timeouts and retry policy, plus the emulator's defaults (latency, capacity)
in an ``[emulator]`` table that only the head-end emulators read. Bad values raise
``HeadEndProfileError`` naming file, field, value, limit.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ams_adapters.contract import (
    ALL_OPERATIONS,
    ALL_PROVISIONING,
    MESSAGE_OPERATIONS,
    MeterCapabilities,
    OperationKind,
    ProvisioningKind,
    RouteCapabilities,
)
from zigbee_se import SEVersion

PROFILE_DIR = Path(__file__).resolve().parent.parent / "firmware_fixtures" / "headends"
TDSPS = ("oncor", "centerpoint", "aep_central", "aep_north", "tnmp")
TRANSPORTS = ("multispeak", "cim", "binary")
# Transports that carry the gateway's SE frame raw (the adapter encodes it), to the premise's devices or to
# one device. MultiSpeak and IEC 61968-9 carry the SE fields in semantic calls (the head-end encodes the
# frame for its meter), and neither has one for writing a device's DRLC client attributes (HEADENDS.md
# §7: 61968-9's PanDemandResponse names the enrollment group of an event, not a device setting;
# MultiSpeak 4.1's InitiateDemandResponseSetup is listed without its payload): they cannot set an
# enrollment group.
FRAME_TRANSPORTS = frozenset({"binary"})
INVENTORY_TIMEOUT_S = 60.0
READ_PAGE_INTERVALS = 96
METER_READ_TIMEOUT_S = 60.0


class HeadEndProfileError(ValueError):
    """A TDSP head-end profile file is missing a field or has a value out of range."""

    def __init__(self, path: str, field: str, value: Any, limit: str) -> None:
        self.path, self.field, self.value, self.limit = path, field, value, limit
        super().__init__(f"{path}: {field}={value!r}: {limit}")


@dataclass(frozen=True, slots=True)
class TdspProfile:
    tdsp: str
    name: str
    transport: str
    batch_size: int
    rate_limit_per_s: float
    max_in_flight: int
    request_timeout_s: float
    retries: int
    breaker_failures: int
    breaker_reset_s: float
    expiry_grace_s: float
    meter: MeterCapabilities
    max_text_bytes: int = 57
    """UTF-8 bytes of DisplayMessage text the TDSP's meters take (`[meter] max_text_bytes`)."""
    max_frame_size: int | None = 73
    """Single-frame budget of the meters' SE frames; None when they fragment (`max_frame_size = 0`)."""
    poll_interval_s: float = 0.2
    group_operations: bool = False
    """MultiSpeak: the head-end takes ...ToGroup operations (one payload, many meters)."""
    emulator: Mapping[str, Any] = field(default_factory=dict)
    provisioning: frozenset[ProvisioningKind] = ALL_PROVISIONING
    """The HAN operations the head-end's integration carries (`provisioning = [...]` in the profile
    or in `[routes.tdsp.<name>.profile]`); by default all of them."""
    inventory_timeout_s: float = INVENTORY_TIMEOUT_S
    """How long the head-end may take to ask a meter for its HAN devices (the han_inventory
    request's expiry): an RF mesh round trip is 30-90 s at the median (HEADENDS.md §8.2)."""
    read_page_intervals: int = READ_PAGE_INTERVALS
    """Interval starts the adapter asks the head-end for in one interval read (issue 16); the head-end
    may answer fewer and say where to go on (it pages); an answer with more is refused."""
    meter_read_timeout_s: float = METER_READ_TIMEOUT_S
    """An on-demand read's expirationTime: the head-end drops the request after it (MultiSpeak)."""

    @property
    def carries_frames(self) -> bool:
        """The transport carries the SE frame raw (the adapter encodes it); the others carry the
        SE fields and the head-end encodes the frame for its meter."""
        return self.transport in FRAME_TRANSPORTS

    def route_capabilities(self) -> RouteCapabilities:
        return RouteCapabilities(name=self.tdsp, batch_size=self.batch_size, rate_limit_per_s=self.rate_limit_per_s,
                                 max_in_flight=self.max_in_flight,
                                 extra={"transport": self.transport, "tdsp_name": self.name},
                                 max_text_bytes=self.max_text_bytes, max_frame_size=self.max_frame_size,
                                 provisioning=self.provisioning, operations=self.operations)

    @property
    def operations(self) -> frozenset[OperationKind]:
        """What the head-end carries through this profile's transport."""
        return ALL_OPERATIONS if self.transport in FRAME_TRANSPORTS else MESSAGE_OPERATIONS

    def with_transport(self, transport: str) -> TdspProfile:
        if transport not in TRANSPORTS:
            raise HeadEndProfileError(self.tdsp, "transport", transport, f"one of {TRANSPORTS}")
        return replace(self, transport=transport)


def _num(path: str, data: Mapping[str, Any], name: str, lo: float, hi: float, *, kind: type = float) -> Any:
    value = data.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
        raise HeadEndProfileError(path, name, value, f"a number in {lo}..{hi}")
    return kind(value)


def _flag(path: str, data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise HeadEndProfileError(path, name, value, "true or false")
    return value


def _provisioning(path: str, data: Mapping[str, Any]) -> frozenset[ProvisioningKind]:
    value = data.get("provisioning")
    if value is None:
        return ALL_PROVISIONING
    known = sorted(k.value for k in ProvisioningKind)
    if not isinstance(value, list) or any(v not in known for v in value):
        raise HeadEndProfileError(path, "provisioning", value, f"a list of {known}")
    return frozenset(ProvisioningKind(v) for v in value)


def load_profile(tdsp: str, directory: Path = PROFILE_DIR, **overrides: Any) -> TdspProfile:
    path = directory / f"{tdsp}.toml"
    if not path.exists():
        raise HeadEndProfileError(str(path), "tdsp", tdsp, f"one of {TDSPS} (a file in {directory})")
    data = tomllib.loads(path.read_text()) | overrides
    p = str(path)
    transport = data.get("transport")
    if transport not in TRANSPORTS:
        raise HeadEndProfileError(p, "transport", transport, f"one of {TRANSPORTS}")
    m = data.get("meter", {})
    try:
        se = SEVersion.parse(str(m.get("se_version", "1.1")))
    except ValueError as exc:
        raise HeadEndProfileError(p, "meter.se_version", m.get("se_version"), "1.0, 1.1 or 1.2") from exc
    if "max_text_length" in m:  # characters, before the limit became UTF-8 bytes
        raise HeadEndProfileError(p, "meter.max_text_length", m["max_text_length"],
                                  "renamed meter.max_text_bytes (UTF-8 bytes of message text, 1..254)")
    meter = MeterCapabilities(
        se_version=se, max_devices=_num(p, m, "max_devices", 1, 10, kind=int),
        max_load_control_devices=_num(p, m, "max_load_control_devices", 0, 10, kind=int),
        price_tiers=_num(p, m, "price_tiers", 1, 48, kind=int))
    return TdspProfile(
        tdsp=str(data.get("tdsp", tdsp)), name=str(data.get("name", tdsp)), transport=transport,
        batch_size=_num(p, data, "batch_size", 1, 10_000, kind=int),
        rate_limit_per_s=_num(p, data, "rate_limit_per_s", 0.001, 1e6),
        max_in_flight=_num(p, data, "max_in_flight", 1, 10_000_000, kind=int),
        request_timeout_s=_num(p, data, "request_timeout_s", 0.01, 600),
        retries=_num(p, data, "retries", 0, 20, kind=int),
        breaker_failures=_num(p, data, "breaker_failures", 1, 1000, kind=int),
        breaker_reset_s=_num(p, data, "breaker_reset_s", 0.01, 3600),
        expiry_grace_s=_num(p, data, "expiry_grace_s", 0, 3600),
        poll_interval_s=float(data.get("poll_interval_s", 0.2)), meter=meter,
        max_text_bytes=_num(p, m, "max_text_bytes", 1, 254, kind=int),
        max_frame_size=_num(p, m, "max_frame_size", 0, 1024, kind=int) or None,  # 0: the meter fragments
        group_operations=_flag(p, data, "group_operations"),
        emulator=dict(data.get("emulator", {})), provisioning=_provisioning(p, data),
        inventory_timeout_s=_num(p, data, "inventory_timeout_s", 0.1, 3600) if "inventory_timeout_s" in data
        else INVENTORY_TIMEOUT_S,
        read_page_intervals=_num(p, data, "read_page_intervals", 1, 2880, kind=int)
        if "read_page_intervals" in data else READ_PAGE_INTERVALS,
        meter_read_timeout_s=_num(p, data, "meter_read_timeout_s", 0.1, 86_400)
        if "meter_read_timeout_s" in data else METER_READ_TIMEOUT_S)
