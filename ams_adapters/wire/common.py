"""What every transport carries, whatever its encoding: a request to the head-end, its
synchronous acknowledgement, and the notifications that come back later."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lxml import etree

from zigbee_se import command_definitions
from zigbee_se.schema import NibblePair
from zigbee_se.types import CharString

if TYPE_CHECKING:
    from ams_adapters.wire.reads import RegisterValue


class WireError(ValueError):
    """A message that breaks its transport's format: names the field, the value and the limit."""

    def __init__(self, field: str, value: Any, limit: str) -> None:
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"{field}: {value!r} is invalid: {limit}")


class HeadEndRequestKind(enum.StrEnum):
    """What a head-end is asked to do: a HAN operation (ams_adapters.contract.OperationKind, which
    is also the gateway's request kind), a HAN provisioning operation (contract.ProvisioningKind)
    or the HAN inventory query (ams_adapters/inventory.py). Their union, spelled out here because
    the wire layer is pure (it imports only zigbee_se, so the emulators can share it);
    tests/test_names.py holds them to the same values."""

    TEXT = "text"
    PRICE = "price"
    LOAD_CONTROL = "load_control"
    CANCEL_TEXT = "cancel_text"
    CANCEL_LOAD_CONTROL = "cancel_load_control"
    CANCEL_ALL_LOAD_CONTROL = "cancel_all_load_control"
    SET_ENROLLMENT_GROUP = "set_enrollment_group"  # a frame to one device (binary transport only)
    INITIALIZE_HAN = "initialize_han"
    PROVISION_DEVICE = "provision_device"
    DELETE_DEVICE = "delete_device"
    CLEAR_DEVICES = "clear_devices"
    DECOMMISSION_HAN = "decommission_han"
    HAN_INVENTORY = "han_inventory"
    """A status query (issue 13): the meter's live list of HAN devices, answered by an
    `inventory` notification carrying `HanRegistration`s."""
    METER_READ = "meter_read"
    """An on-demand register read (issue 16): answered by a `meter_read` notification carrying
    the meter's registers (`Notification.register`)."""

    @property
    def provisioning(self) -> bool:
        return self in PROVISIONING_KINDS

    @property
    def carries_se_command(self) -> bool:
        """HAN messages carry an SE command; provisioning and the inventory query do not."""
        return not self.provisioning and self not in (HeadEndRequestKind.HAN_INVENTORY,
                                                      HeadEndRequestKind.METER_READ)


PROVISIONING_KINDS = frozenset({HeadEndRequestKind.INITIALIZE_HAN, HeadEndRequestKind.PROVISION_DEVICE,
                                HeadEndRequestKind.DELETE_DEVICE, HeadEndRequestKind.CLEAR_DEVICES,
                                HeadEndRequestKind.DECOMMISSION_HAN})


@dataclass(frozen=True, slots=True)
class HeadEndRequest:
    transaction_id: str
    esi_id: str
    kind: HeadEndRequestKind
    expires_at: float
    target: str = "meter"
    """meter | device | capable_devices (contract.TargetKind values)."""
    eui64: str | None = None
    cluster_id: int = 0
    command: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    frame: bytes = b""
    se_version: str = "1.1"
    link_key: bytes | None = None
    join_window_s: int | None = None


class AckStatus(enum.StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # permanent: the head-end will never take this request as it is
    BUSY = "busy"  # capacity: try again after retry_after_s
    ERROR = "error"  # transient head-end failure


@dataclass(frozen=True, slots=True)
class Ack:
    transaction_id: str
    status: AckStatus
    reason: str | None = None
    retry_after_s: float | None = None


class NoteKind(enum.StrEnum):
    DELIVERED = "delivered"  # the meter took the command
    FAILED = "failed"  # the head-end gave up, with a reason
    DEVICE_RESPONSE = "device_response"  # a device's SE frame, relayed raw
    PROVISIONING = "provisioning"  # state: requested|find_pending|joined|failed|deleted
    REACHABILITY = "reachability"  # state: reachable|unreachable
    INVENTORY = "inventory"  # the answer to a han_inventory request: meter_id + registrations
    METER_READ = "meter_read"  # the answer to a meter_read request: register


@dataclass(frozen=True, slots=True)
class HanRegistration:
    """One HAN device as the meter reports it in an inventory (MultiSpeak's HANRegistration;
    61968-9's EndDevice with a status). `state`: provision_requested | find_pending | joined |
    failed; the rest is None where the meter does not know it."""

    eui64: str
    state: str
    device_type: str | None = None
    se_version: str | None = None
    last_seen: float | None = None
    lqi: int | None = None
    rssi: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    kind: NoteKind
    transaction_id: str
    esi_id: str
    at: float
    state: str | None = None
    eui64: str | None = None
    reason: str | None = None
    cluster_id: int | None = None
    frame: bytes | None = None
    meter_id: str | None = None
    """INVENTORY: the meter's own identity (its ESI EUI-64)."""
    registrations: tuple[HanRegistration, ...] = ()
    """INVENTORY: every HAN device the meter knows."""
    register: RegisterValue | None = None
    """METER_READ: the meter's registers."""


# ------------------------------------------------------------------ semantic SE fields
# Semantic transports (MultiSpeak, 61968-9) carry the SE command's field values, not its frame;
# the head-end encodes the frame for the meter. Field types come from the codec's own command
# tables, so a value is an int unless the SE field is a character string.


def _field_types(cluster_id: int, command: str) -> dict[str, bool]:
    defs = command_definitions(cluster_id, command)
    out: dict[str, bool] = {}
    for d in defs:
        for item in d.fields:
            for f in (item.high, item.low) if isinstance(item, NibblePair) else (item,):
                out[f.name] = isinstance(f.type, CharString)
    return out


_TYPES_CACHE: dict[tuple[int, str], dict[str, bool]] = {}


def field_is_text(cluster_id: int, command: str) -> dict[str, bool]:
    key = (cluster_id, command)
    types = _TYPES_CACHE.get(key)
    if types is None:
        try:
            types = _field_types(cluster_id, command)
        except (KeyError, ValueError) as exc:
            raise WireError("command", f"{cluster_id:#06x}/{command}", "an SE command the codec defines") from exc
        _TYPES_CACHE[key] = types
    return types


def camel(name: str) -> str:
    """SE field name -> XML element name: issuer_event_id -> issuerEventID."""
    head, *rest = name.split("_")
    return head + "".join("ID" if p == "id" else p.capitalize() for p in rest)


def field_value(cluster_id: int, command: str, name: str, text: str) -> Any:
    types = field_is_text(cluster_id, command)
    if name not in types:
        raise WireError(camel(name), text, f"a field of SE {command}")
    if types[name]:
        return text
    try:
        return int(text)
    except ValueError as exc:
        raise WireError(camel(name), text, "an integer") from exc


def uncamel_map(cluster_id: int, command: str) -> dict[str, str]:
    return {camel(n): n for n in field_is_text(cluster_id, command)}


def read_se_command(cmd: Any, where: str) -> tuple[int, str, dict[str, Any]]:
    """The <seCommand cluster="0701" name="load_control_event"> element both XML transports carry
    (MultiSpeak and 61968-9) -> (cluster id, command, SE field values)."""
    if cmd is None:
        raise WireError("seCommand", None, f"required in {where}")
    try:
        cluster_id = int(cmd.get("cluster", ""), 16)
    except ValueError as exc:
        raise WireError("seCommand/@cluster", cmd.get("cluster"), "hex cluster id") from exc
    command = cmd.get("name") or ""
    names = uncamel_map(cluster_id, command)
    fields: dict[str, Any] = {}
    for child in cmd:
        local = etree.QName(child).localname
        if local not in names:
            raise WireError(local, child.text, f"a field of SE {command}")
        fields[names[local]] = field_value(cluster_id, command, names[local], child.text or "")
    return cluster_id, command, fields
