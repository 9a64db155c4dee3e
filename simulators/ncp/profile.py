"""Coordinator firmware profiles: what an emulated NCP says about itself.

Profiles are data in `firmware_fixtures/coordinators/*.toml` so a new stick is a new file, not code.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import bellows.types as t

COORDINATOR_PROFILES = Path(__file__).resolve().parents[2] / "firmware_fixtures" / "coordinators"
DEFAULT_PROFILE = "emberznet-7.4-mg24"

SUPPORTED_EZSP_VERSIONS = (13,)


class ProfileError(ValueError):
    """A coordinator profile file is missing or has a bad field."""

    def __init__(self, field: str, value: object, limit: str) -> None:
        super().__init__(f"coordinator profile field {field}={value!r}: {limit}")
        self.field = field
        self.value = value
        self.limit = limit


@dataclasses.dataclass(frozen=True)
class CoordinatorProfile:
    name: str
    description: str
    ezsp_version: int
    stack_version: tuple[int, int, int, int]  # major, minor, patch, special
    build: int
    manufacturer: str
    board: str
    eui64: t.EUI64
    stack_type: int = 2  # 2 = mesh stack, as every EmberZNet NCP reports
    key_table_size: int = 12
    address_table_size: int = 16
    child_table_size: int = 32
    multicast_table_size: int = 16
    binding_table_size: int = 16
    packet_buffer_count: int = 255
    # How long an emulated device takes to APS-acknowledge a unicast, seconds.
    aps_ack_delay_s: float = 0.0

    @property
    def stack_version_word(self) -> int:
        """version() reports the stack version as nibbles: 7.4.4.0 -> 0x7440."""
        major, minor, patch, special = self.stack_version
        return (major << 12) | (minor << 8) | (patch << 4) | special

    @property
    def version_string(self) -> str:
        """What bellows shows as the firmware version (from VALUE_VERSION_INFO)."""
        major, minor, patch, special = self.stack_version
        return f"{major}.{minor}.{patch}.{special} build {self.build}"


def _require(data: dict[str, object], field: str, kind: type) -> object:
    if field not in data:
        raise ProfileError(field, None, "is required")
    value = data[field]
    if not isinstance(value, kind):
        raise ProfileError(field, value, f"must be a {kind.__name__}")
    return value


def parse_profile(name: str, data: dict[str, object]) -> CoordinatorProfile:
    version = _require(data, "ezsp_version", int)
    if version not in SUPPORTED_EZSP_VERSIONS:
        raise ProfileError("ezsp_version", version, f"supported: {SUPPORTED_EZSP_VERSIONS}")
    stack = str(_require(data, "stack_version", str))
    parts = stack.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 16 for p in parts):
        raise ProfileError("stack_version", stack, "four numbers 0-15, e.g. 7.4.4.0")
    eui64_text = str(_require(data, "eui64", str))
    try:
        eui64 = t.EUI64.convert(eui64_text)
    except ValueError as exc:
        raise ProfileError("eui64", eui64_text, "eight hex bytes, aa:bb:…") from exc
    tables = data.get("tables", {})
    if not isinstance(tables, dict):
        raise ProfileError("tables", tables, "must be a table")
    sizes = {}
    for key in (
        "key_table_size",
        "address_table_size",
        "child_table_size",
        "multicast_table_size",
        "packet_buffer_count",
    ):
        if key in tables:
            value = tables[key]
            if not isinstance(value, int) or not 0 <= value <= 255:
                raise ProfileError(f"tables.{key}", value, "an integer 0-255")
            sizes[key] = value
    return CoordinatorProfile(
        name=name,
        description=str(data.get("description", name)),
        ezsp_version=int(version),
        stack_version=tuple(int(p) for p in parts),  # type: ignore[arg-type]
        build=int(data.get("build", 0)),  # type: ignore[call-overload]
        manufacturer=str(_require(data, "manufacturer", str)),
        board=str(_require(data, "board", str)),
        eui64=eui64,
        aps_ack_delay_s=float(data.get("aps_ack_delay_s", 0.0)),  # type: ignore[arg-type]
        **sizes,
    )


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> CoordinatorProfile:
    """Load a profile by name (a file in firmware_fixtures/coordinators) or by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = COORDINATOR_PROFILES / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in COORDINATOR_PROFILES.glob("*.toml"))
        raise ProfileError("profile", str(name_or_path), f"no such profile; known: {known}")
    with path.open("rb") as f:
        return parse_profile(path.stem, tomllib.load(f))
