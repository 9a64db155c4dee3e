"""The premise HAN behind the emulated coordinator: devices that join, receive and answer.

Devices are byte-level peers (the simulators package's `SimDevice`): they see ZCL frames only.
Everything below ZCL that a real device's stack would do on its own — association, key
establishment with the install-code key, APS acknowledgements, ZDO descriptor answers — is done
here on their behalf, from what the device declares.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import bellows.types as t
import zigpy.types as zt
import zigpy.util

from simulators.device import Uplink
from zigbee_se import SE_PROFILE_ID

IN_HOME_DISPLAY = 0x0502  # SE device id (0x0501 is a metering device): see simulators/device.py


@runtime_checkable
class EmulatedDevice(Protocol):
    """What the emulator needs from a device on its HAN (simulators' SimDevice has exactly this).
    Not the gateway's stored HAN device (gateway.domain.records.HanDevice).

    Optional attributes, read with defaults: `endpoint` (1), `profile_id` (0x0109),
    `device_type` (0x0502 in-home display), `input_clusters`, `output_clusters`,
    `node_type` ("router" or "end_device").
    """

    @property
    def eui64(self) -> Any:  # EUI64, "aa:bb:…" text or 8 bytes in on-air (little-endian) order
        ...

    @property
    def install_code(self) -> bytes | str | None: ...

    def attach(self, uplink: Uplink) -> None: ...
    def deliver(self, cluster_id: int, zcl_frame: bytes) -> Awaitable[None] | None: ...
    def on_joined(self) -> None: ...


class JoinResult(enum.Enum):
    JOINED = "joined"
    NOT_PERMITTED = "joining not permitted"
    NO_KEY = "no install-code key registered for this device"
    WRONG_KEY = "install-code key does not match"
    ALREADY_JOINED = "already joined"


def as_eui64(value: Any) -> t.EUI64:
    if isinstance(value, t.EUI64 | zt.EUI64):
        return t.EUI64(value)
    if isinstance(value, bytes | bytearray):
        return t.EUI64(bytes(value))  # on-air (little-endian) order, as zigpy serializes it
    return t.EUI64.convert(str(value))


def link_key_of(device: EmulatedDevice) -> t.KeyData | None:
    """The key the device's stack joins with: from its install code, else the well-known key.

    None when the code itself is bad (wrong length or CRC): such a device can never join.
    """
    key = getattr(device, "link_key", None)
    if key is not None:
        return t.KeyData(bytes(key))
    code = device.install_code
    if code is None:
        return t.KeyData(b"ZigBeeAlliance09")
    if isinstance(code, str):
        code = bytes.fromhex(code.replace(":", "").replace(" ", "").replace("-", ""))
    try:
        return t.KeyData(zigpy.util.convert_install_code(bytes(code)))
    except ValueError:
        return None


@dataclasses.dataclass
class Member:
    device: EmulatedDevice
    eui64: t.EUI64
    nwk: int
    link_key: t.KeyData
    reachable: bool = True
    aps_counter: int = 0
    # Where the device sends its frames: the endpoint the ESI last addressed it from (devices
    # answer the source endpoint; SE devices find the ESI by service discovery), else None.
    esi_endpoint: int | None = None

    @property
    def endpoint(self) -> int:
        return int(getattr(self.device, "endpoint", 1))

    @property
    def profile_id(self) -> int:
        return int(getattr(self.device, "profile_id", SE_PROFILE_ID))

    @property
    def device_type(self) -> int:
        return int(getattr(self.device, "device_type", IN_HOME_DISPLAY))

    @property
    def input_clusters(self) -> list[int]:
        return list(getattr(self.device, "input_clusters", [0x000A]))

    @property
    def output_clusters(self) -> list[int]:
        return list(getattr(self.device, "output_clusters", [0x0700, 0x0701, 0x0703, 0x000A]))

    @property
    def node_type(self) -> t.EmberNodeType:
        kind = str(getattr(self.device, "node_type", "router"))
        return t.EmberNodeType.ROUTER if kind == "router" else t.EmberNodeType.END_DEVICE


def nwk_for(eui64: t.EUI64, taken: set[int]) -> int:
    """A stable, collision-free short address per device (real stacks pick them at random)."""
    digest = hashlib.sha256(bytes(eui64)).digest()
    nwk = int.from_bytes(digest[:2], "little") % 0xFFF0 or 1
    while nwk in taken or nwk == 0:
        nwk = (nwk + 1) % 0xFFF0
    return nwk


DeliverHook = Callable[[Member, int, bytes], None]
