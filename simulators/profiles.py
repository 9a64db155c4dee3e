"""Device firmware profiles: data files in ``firmware_fixtures/devices/`` saying how a device acts.

A profile is loaded once and shared by every simulated device that runs it (a fleet of 200,000
devices holds a handful of profile objects). TOML is read with the standard library's ``tomllib``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.errors import FirmwareProfileError

PROFILE_DIR = Path(__file__).resolve().parent.parent / "firmware_fixtures" / "devices"

DEVICE_TYPES = ("ihd", "pct", "load_control")
# "spec" follows the SE rules; the others are real stacks (simulators/drlc_client.py DrlcRules).
DRLC_VARIANTS = ("spec", "silabs", "nxp", "exegin", "freescale")
SE_VERSIONS = ("1.0", "1.1", "1.2")
CLIENT_CLUSTERS = ("price", "drlc", "messaging", "metering", "time")
TEXT_OVERFLOW = ("truncate", "reject")


@dataclass(frozen=True, slots=True)
class Quirks:
    """Misbehaviour and stack-specific behaviour (each documented in the profile files)."""

    reject_trailing_fields: bool = False  # SE 1.0 parser that refuses SE 1.1 optional fields
    max_text_bytes: int = 59  # longest message text shown (UTF-8 bytes)
    text_overflow: str = "truncate"  # too-long text: "truncate" (shown cut) or "reject"
    never_confirm: bool = False  # the resident never presses confirm
    confirm_delay_s: float = 30.0  # time from display to the resident pressing confirm
    drop_ratio: float = 0.0  # share of incoming frames silently lost
    clock_drift_ppm: float = 0.0  # local clock runs fast (+) or slow (-)
    clock_offset_s: float = 0.0  # local clock error before the first time sync
    refuse_mandatory_opt_out: bool = False  # opt-out of criticality >= 7 refused
    ignore_price_ack_bit: bool = False  # never sends PriceAcknowledgement
    # DRLC client attribute ids the firmware was built with as read-only: a Write Attributes to
    # them is answered READ_ONLY (0x88). SE makes all four writable; a fixed-function device may
    # still be built so (SE lets it refuse a DeviceClassValue write).
    read_only_attributes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FirmwareProfile:
    """One device firmware: identity, SE version, clusters, DRLC attributes, timing and quirks."""

    id: str
    vendor: str
    model: str
    firmware_version: str
    se_version: str
    device_type: str
    clusters: tuple[str, ...]
    device_class: int = 0x0001
    utility_enrollment_group: int = 0
    start_randomization_minutes: int = 0
    duration_randomization_minutes: int = 0
    drlc_variant: str = "spec"
    answer_delay_s: float = 0.1
    join_delay_s: float = 1.0
    event_table_size: int = 3
    price_table_size: int = 5
    nominal_load_w: float = 0.0
    metering_poll_s: float = 0.0  # IHD: how often it reads the meter (0 = never)
    # After joining (SE_BEHAVIOUR.md §6 and §2.2). Registration: find the ESI by Match_Desc for the
    # DRLC server and ask it to bind each SE client cluster to the device (a coordinator that
    # speaks ZDO only: the EZSP emulator; a SimMeter has no ZDO and the step is skipped).
    binds_to_esi: bool = False
    # Then read the ESI's time and ask for what was missed (GetLastMessage, GetCurrentPrice,
    # GetScheduledEvents); False is a firmware that only listens for what is pushed to it.
    requests_after_join: bool = True
    time_poll_s: float = 0.0  # re-read the ESI's Time and TimeStatus this often (0 = never)
    description: str = ""
    quirks: Quirks = field(default_factory=Quirks)
    source: str = ""

    def has(self, cluster: str) -> bool:
        return cluster in self.clusters


def _check(path: str, data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise FirmwareProfileError(path, name, None, "required field is missing")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise FirmwareProfileError(path, name, value, f"must be {kind}")
    return value


def _in_range(path: str, name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise FirmwareProfileError(path, name, value, f"must be within {lo}..{hi}")


def profile_from_dict(data: dict[str, Any], path: str = "<dict>") -> FirmwareProfile:
    """Validate a parsed profile document and build the shared profile object."""
    ident = _check(path, data, "id", str)
    se_version = _check(path, data, "se_version", str)
    if se_version not in SE_VERSIONS:
        raise FirmwareProfileError(path, "se_version", se_version, f"one of {SE_VERSIONS}")
    device_type = _check(path, data, "device_type", str)
    if device_type not in DEVICE_TYPES:
        raise FirmwareProfileError(path, "device_type", device_type, f"one of {DEVICE_TYPES}")
    clusters = _check(path, data, "clusters", list)
    for c in clusters:
        if c not in CLIENT_CLUSTERS:
            raise FirmwareProfileError(path, "clusters", c, f"each one of {CLIENT_CLUSTERS}")
    variant = data.get("drlc_variant", "spec")
    if variant not in DRLC_VARIANTS:
        raise FirmwareProfileError(path, "drlc_variant", variant, f"one of {DRLC_VARIANTS}")
    ints = {
        "device_class": (0, 0x0FFF),
        "utility_enrollment_group": (0, 0xFF),
        "start_randomization_minutes": (0, 0x3C),
        "duration_randomization_minutes": (0, 0x3C),
        "event_table_size": (1, 255),
        "price_table_size": (1, 255),
    }
    kwargs: dict[str, Any] = {}
    for name, (lo, hi) in ints.items():
        if name in data:
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise FirmwareProfileError(path, name, value, "must be an integer")
            _in_range(path, name, value, lo, hi)
            kwargs[name] = value
    for name in ("binds_to_esi", "requests_after_join"):
        if name in data:
            if not isinstance(data[name], bool):
                raise FirmwareProfileError(path, name, data[name], "must be true or false")
            kwargs[name] = data[name]
    for name in ("answer_delay_s", "join_delay_s", "nominal_load_w", "metering_poll_s", "time_poll_s"):
        if name in data:
            value = data[name]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise FirmwareProfileError(path, name, value, "must be a number")
            _in_range(path, name, value, 0, 1e9)
            kwargs[name] = float(value)
    raw_quirks = data.get("quirks", {})
    if not isinstance(raw_quirks, dict):
        raise FirmwareProfileError(path, "quirks", raw_quirks, "must be a table")
    known = set(Quirks.__dataclass_fields__)
    for key in raw_quirks:
        if key not in known:
            raise FirmwareProfileError(
                path, f"quirks.{key}", raw_quirks[key], f"known quirks: {sorted(known)}")
    q = dict(raw_quirks)
    if "drop_ratio" in q:
        _in_range(path, "quirks.drop_ratio", q["drop_ratio"], 0.0, 1.0)
    if "max_text_bytes" in q:
        _in_range(path, "quirks.max_text_bytes", q["max_text_bytes"], 1, 255)
    if q.get("text_overflow", "truncate") not in TEXT_OVERFLOW:
        raise FirmwareProfileError(
            path, "quirks.text_overflow", q["text_overflow"], f"one of {TEXT_OVERFLOW}")
    if "read_only_attributes" in q:
        ids = q["read_only_attributes"]
        if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 0xFFFF for i in ids):
            raise FirmwareProfileError(
                path, "quirks.read_only_attributes", ids, "a list of attribute ids in 0..0xffff")
        q["read_only_attributes"] = tuple(ids)
    for name in ("confirm_delay_s", "clock_offset_s", "clock_drift_ppm"):
        if name in q:
            q[name] = float(q[name])
    return FirmwareProfile(
        id=ident,
        vendor=_check(path, data, "vendor", str),
        model=_check(path, data, "model", str),
        firmware_version=_check(path, data, "firmware_version", str),
        se_version=se_version,
        device_type=device_type,
        clusters=tuple(clusters),
        drlc_variant=variant,
        description=data.get("description", ""),
        quirks=Quirks(**q),
        source=path,
        **kwargs,
    )


def load_profile(path: str | Path) -> FirmwareProfile:
    """Load one TOML profile file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FirmwareProfileError(str(p), "<file>", None, f"not valid TOML: {exc}") from exc
    return profile_from_dict(data, str(p))


def load_profiles(directory: str | Path = PROFILE_DIR) -> dict[str, FirmwareProfile]:
    """Load every ``*.toml`` profile in ``directory``, keyed by profile id."""
    profiles: dict[str, FirmwareProfile] = {}
    for p in sorted(Path(directory).glob("*.toml")):
        prof = load_profile(p)
        if prof.id in profiles:
            raise FirmwareProfileError(str(p), "id", prof.id, f"already used by {profiles[prof.id].source}")
        profiles[prof.id] = prof
    return profiles
