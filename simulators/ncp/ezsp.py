# mypy: disable-error-code="no-untyped-call"
# (zigpy's ZDO types and (de)serializers carry no annotations.)
"""EZSP protocol 13 as an EmberZNet 7.3/7.4 NCP answers it, behind the ASH layer.

Requests are decoded and responses encoded with bellows' own command table
(`bellows.ezsp.v13.commands.COMMANDS`: name -> (frame id, request schema, response schema)) and
`bellows.types`, so the emulator and the host cannot disagree about a field. Commands that need
behaviour have a `_cmd_<name>` method below; every other known command gets the all-zero response
(status SUCCESS), which is what firmware answers for the many configuration calls bellows makes.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Callable
from typing import Any

import bellows.types as t
import zigpy.types as zt
import zigpy.zdo.types as zdo_t
from bellows.ash import NcpFailure
from bellows.ezsp.v13.commands import COMMANDS

from simulators.ncp.ash import NcpAshProtocol
from simulators.ncp.han import (
    HanDevice,
    JoinResult,
    Member,
    as_eui64,
    link_key_of,
    nwk_for,
)
from simulators.ncp.profile import CoordinatorProfile
from simulators.ncp.state import LinkKeyEntry, Nvram, StackState
from zigbee_se import SE_PROFILE_ID

LOGGER = logging.getLogger(__name__)

COMMANDS_BY_ID = {cmd_id: (name, tx, rx) for name, (cmd_id, tx, rx) in COMMANDS.items()}

# Frame control, low byte (ezsp-protocol.h): responses have 0x80; callbacks add 0x10 (async).
FC_RESPONSE = 0x80
FC_ASYNC_CALLBACK = 0x10
FC_HIGH_FORMAT_1 = 0x01  # frame format version 1: 16-bit frame ids (EZSP v8+)
LEGACY_VERSION_FRAME_ID = 0x00
MANUFACTURER_CODE = 0x1049  # Silicon Labs, what EmberZNet reports in its node descriptor
NO_ACK_DELAY_S = 0.3
PAIRING_DELAY_S = 0.05  # how long the stack retries a unicast before reporting DELIVERY_FAILED
INCOMING_LQI = 255
INCOMING_RSSI = -45
UNUSED_INDEX = 0xFF


def _zero(typ: Any) -> Any:
    """The all-zero value of a bellows/zigpy type, as firmware's zeroed response buffer holds."""
    if isinstance(typ, type) and issubclass(typ, list) and getattr(typ, "_length", None) is None:
        return typ()  # variable-length lists (counters, cluster lists) are empty
    value, _ = typ.deserialize(bytes(512))
    return value


def encode_fields(schema: Any, fields: dict[str, Any]) -> bytes:
    if isinstance(schema, dict):
        full = {name: fields[name] if name in fields else _zero(typ) for name, typ in schema.items()}
        return bytes(t.serialize_dict([], full, schema))
    return bytes(schema(**fields).serialize())


class EzspNcp:
    """One emulated coordinator: its EZSP command processor, its stack and its HAN."""

    def __init__(self, profile: CoordinatorProfile, nvram: Nvram | None = None) -> None:
        self.profile = profile
        self.nvram = nvram or Nvram(factory_eui64=profile.eui64)
        if not self.nvram.key_table:
            self.nvram.key_table = [None] * profile.key_table_size
        self.stack = StackState.booted(profile)
        self.members: dict[t.EUI64, Member] = {}
        self.counters: collections.Counter[t.EmberCounterType] = collections.Counter()
        self.commands_received: list[str] = []
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._ash: NcpAshProtocol | None = None
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._deferred: list[bytes] | None = None
        self._last_seq = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self.paused = False  # "hung" firmware: receives but never answers (fault injection)
        # Devices in pairing mode: they try to join whenever the coordinator permits joining.
        self.pairing: list[HanDevice] = []
        self.join_log: list[tuple[str, JoinResult]] = []

    # ------------------------------------------------------------------ ASH wiring
    def connection_made(self, ash: NcpAshProtocol) -> None:
        self._ash = ash
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def connection_lost(self, exc: Exception | None) -> None:
        self._ash = None
        self._drop_queued()

    def host_reset(self) -> None:
        """ASH RST from the host: the NCP reboots, its stack state is gone, NVRAM stays."""
        self.reboot()

    def reboot(self) -> None:
        self._drop_queued()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.stack = StackState.booted(self.profile)

    def _drop_queued(self) -> None:
        while not self._out.empty():
            self._out.get_nowait()

    async def _write_loop(self) -> None:
        while True:
            frame = await self._out.get()
            ash = self._ash
            if ash is None:
                continue
            try:
                await ash.send_data(frame)
            except (NcpFailure, RuntimeError, TimeoutError) as exc:
                # Host never acknowledged (or reset meanwhile): firmware drops the frame too.
                LOGGER.debug("NCP frame not delivered to host: %r", exc)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        for task in self._tasks:
            task.cancel()
        for timer in self._timers:
            timer.cancel()

    # ------------------------------------------------------------------ framing
    def data_received(self, data: bytes) -> None:
        if len(data) < 3:
            LOGGER.debug("NCP ignoring short EZSP frame %s", data.hex())
            return
        seq = data[0]
        if data[2] == FC_HIGH_FORMAT_1 and len(data) >= 5:
            frame_id = int.from_bytes(data[3:5], "little")
            params, legacy = data[5:], False
        else:
            frame_id, params, legacy = data[2], data[3:], True
        self._last_seq = seq
        if self.paused:
            return
        if legacy and frame_id != LEGACY_VERSION_FRAME_ID:
            self._queue_response(seq, 0x0058, {"status": t.EzspStatus.ERROR_WRONG_DIRECTION})
            return
        self._dispatch(seq, frame_id, params, legacy)

    def _header(self, seq: int, frame_id: int, fc: int, legacy: bool) -> bytes:
        if legacy:
            return bytes([seq, fc, frame_id])
        return bytes([seq, fc, FC_HIGH_FORMAT_1]) + frame_id.to_bytes(2, "little")

    def _queue_response(self, seq: int, frame_id: int, fields: dict[str, Any], legacy: bool = False) -> None:
        _name, _, rx = COMMANDS_BY_ID[frame_id]
        frame = self._header(seq, frame_id, FC_RESPONSE, legacy) + encode_fields(rx, fields)
        self._out.put_nowait(frame)

    def callback(self, name: str, **fields: Any) -> None:
        """Send an asynchronous callback (stackStatusHandler, messageSentHandler…) to the host."""
        frame_id, _, rx = COMMANDS[name]
        # A callback reuses the last sequence number: the host has no command pending under it
        # any more (one command at a time), so bellows routes it to its callback handlers.
        frame = self._header(self._last_seq, frame_id, FC_RESPONSE | FC_ASYNC_CALLBACK, False) + encode_fields(
            rx, fields
        )
        for listener in self.listeners:
            listener(name, fields)
        if self._deferred is not None:
            self._deferred.append(frame)
        else:
            self._out.put_nowait(frame)

    def _dispatch(self, seq: int, frame_id: int, params: bytes, legacy: bool) -> None:
        if frame_id not in COMMANDS_BY_ID:
            self._queue_response(seq, 0x0058, {"status": t.EzspStatus.ERROR_INVALID_FRAME_ID})
            return
        name, tx, _rx = COMMANDS_BY_ID[frame_id]
        self.commands_received.append(name)
        try:
            if isinstance(tx, dict):
                args, _rest = t.deserialize_dict(params, tx)
            else:
                args = tx.deserialize(params)[0].as_dict()
        except (ValueError, KeyError) as exc:
            LOGGER.debug("NCP cannot parse %s(%s): %r", name, params.hex(), exc)
            self._queue_response(seq, 0x0058, {"status": t.EzspStatus.ERROR_INVALID_CALL})
            return
        handler = getattr(self, f"_cmd_{name}", None)
        self._deferred = []
        try:
            fields = handler(args) if handler is not None else {}
            self._queue_response(seq, frame_id, fields, legacy)
        except Exception:
            # An emulator bug must not kill the serial reader; the host sees a failed command.
            LOGGER.exception("NCP failed to handle %s(%r)", name, args)
            self._deferred = []
            self._queue_response(seq, 0x0058, {"status": t.EzspStatus.ERROR_INVALID_CALL})
        finally:
            deferred, self._deferred = self._deferred, None
        for frame in deferred:
            self._out.put_nowait(frame)

    def _later(self, delay: float, func: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        if delay <= 0:
            func()
            return

        def run() -> None:
            self._timers.discard(handle)
            func()

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    # ------------------------------------------------------------------ identity, config
    def _cmd_version(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "protocolVersion": self.profile.ezsp_version,
            "stackType": self.profile.stack_type,
            "stackVersion": self.profile.stack_version_word,
        }

    def _cmd_customFrame(self, args: dict[str, Any]) -> dict[str, Any]:
        # No XNCP extensions: stock EmberZNet answers custom frames with an error.
        return {"status": t.EmberStatus.INVALID_CALL, "reply": t.LVBytes(b"")}

    def _cmd_echo(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"echo": args["data"]}

    def _value(self, value_id: t.EzspValueId) -> bytes | None:
        if value_id == t.EzspValueId.VALUE_VERSION_INFO:
            major, minor, patch, special = self.profile.stack_version
            return (
                self.profile.build.to_bytes(2, "little")
                + bytes([major, minor, patch, special, 0xAA])  # 0xAA: release build type
            )
        if value_id == t.EzspValueId.VALUE_FREE_BUFFERS:
            return bytes([self.profile.packet_buffer_count])
        if value_id == t.EzspValueId.VALUE_NWK_FRAME_COUNTER:
            return self.nvram.nwk_frame_counter.to_bytes(4, "little")
        if value_id == t.EzspValueId.VALUE_APS_FRAME_COUNTER:
            return self.nvram.aps_frame_counter.to_bytes(4, "little")
        return self.stack.values.get(value_id)

    def _cmd_getValue(self, args: dict[str, Any]) -> dict[str, Any]:
        value = self._value(args["valueId"])
        if value is None:
            return {"status": t.EzspStatus.ERROR_INVALID_ID, "value": t.LVBytes(b"")}
        return {"status": t.EzspStatus.SUCCESS, "value": t.LVBytes(value)}

    def _cmd_setValue(self, args: dict[str, Any]) -> dict[str, Any]:
        value_id, value = args["valueId"], bytes(args["value"])
        if value_id == t.EzspValueId.VALUE_NWK_FRAME_COUNTER:
            self.nvram.nwk_frame_counter = int.from_bytes(value, "little")
        elif value_id == t.EzspValueId.VALUE_APS_FRAME_COUNTER:
            self.nvram.aps_frame_counter = int.from_bytes(value, "little")
        else:
            self.stack.values[value_id] = value
        return {"status": t.EzspStatus.SUCCESS}

    def _cmd_getConfigurationValue(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"status": t.EzspStatus.SUCCESS, "value": self.stack.config.get(args["configId"], 0)}

    def _cmd_setConfigurationValue(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.stack.network_up:
            return {"status": t.EzspStatus.ERROR_INVALID_CALL}  # only before networkInit
        self.stack.config[args["configId"]] = int(args["value"])
        return {"status": t.EzspStatus.SUCCESS}

    def _cmd_getBinding(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        if index >= self.profile.binding_table_size:
            return {"status": t.EmberStatus.INDEX_OUT_OF_RANGE}
        if index >= len(self.nvram.bindings):
            entry = t.EmberBindingTableEntry(
                type=t.EmberBindingType.UNUSED_BINDING, local=0, clusterId=0, remote=0,
                identifier=t.EUI64(bytes(8)), networkIndex=0,
            )
        else:
            local, cluster, remote_eui, remote_ep = self.nvram.bindings[index]
            entry = t.EmberBindingTableEntry(
                type=t.EmberBindingType.UNICAST_BINDING, local=local, clusterId=cluster, remote=remote_ep,
                identifier=remote_eui, networkIndex=0,
            )
        return {"status": t.EmberStatus.SUCCESS, "value": entry}

    def _cmd_addEndpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        endpoint = int(args["endpoint"])
        if endpoint in self.stack.endpoints:
            return {"status": t.EzspStatus.ERROR_INVALID_CALL}
        self.stack.endpoints[endpoint] = (
            int(args["profileId"]),
            [int(c) for c in args["inputClusterList"]],
            [int(c) for c in args["outputClusterList"]],
        )
        return {"status": t.EzspStatus.SUCCESS}

    def _counter_values(self, clear: bool) -> dict[str, Any]:
        values = [min(self.counters[c], 0xFFFF) for c in t.EmberCounterType]
        if clear:
            self.counters.clear()
        return {"values": values}

    def _cmd_readCounters(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._counter_values(clear=False)

    def _cmd_readAndClearCounters(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._counter_values(clear=True)

    def _cmd_getMfgToken(self, args: dict[str, Any]) -> dict[str, Any]:
        token = args["tokenId"]
        if token == t.EzspMfgTokenId.MFG_STRING:
            data = self.profile.manufacturer.encode()[:16].ljust(16, b"\x00")
        elif token == t.EzspMfgTokenId.MFG_BOARD_NAME:
            data = self.profile.board.encode()[:16].ljust(16, b"\x00")
        elif token == t.EzspMfgTokenId.MFG_CUSTOM_EUI_64:
            data = b"\xff" * 8  # never burned: the factory EUI64 is in use
        else:
            data = b""
        return {"tokenData": t.LVBytes(data)}

    def _cmd_getTokenData(self, args: dict[str, Any]) -> dict[str, Any]:
        # Only the restored-EUI64 NV3 token is emulated: it is what zigpy's restore uses to
        # move a network onto a new stick. Other tokens answer "not found" like RCP firmware.
        if args["token"] == t.NV3KeyId.CREATOR_STACK_RESTORED_EUI64:
            eui = self.nvram.restored_eui64 or t.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
            return {"status": t.EmberStatus.SUCCESS, "value": t.LVBytes32(eui.serialize())}
        return {"status": t.EmberStatus.ERR_FATAL}

    def _cmd_setTokenData(self, args: dict[str, Any]) -> dict[str, Any]:
        if args["token"] != t.NV3KeyId.CREATOR_STACK_RESTORED_EUI64:
            return {"status": t.EmberStatus.ERR_FATAL}
        eui, _ = t.EUI64.deserialize(bytes(args["token_data"]))
        blank = eui == t.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
        self.nvram.restored_eui64 = None if blank else eui
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_getEui64(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"eui64": self.nvram.eui64}

    def _cmd_getNodeId(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"nodeId": 0x0000 if self.stack.network_up else 0xFFFE}

    def _cmd_setPolicy(self, args: dict[str, Any]) -> dict[str, Any]:
        self.stack.policies[args["policyId"]] = int(args["decisionId"])
        return {"status": t.EzspStatus.SUCCESS}

    # ------------------------------------------------------------------ network
    def _cmd_networkState(self, args: dict[str, Any]) -> dict[str, Any]:
        up = self.stack.network_up
        return {"status": t.EmberNetworkStatus.JOINED_NETWORK if up else t.EmberNetworkStatus.NO_NETWORK}

    def _network_up(self) -> None:
        self.stack.network_up = True
        self.callback("stackStatusHandler", status=t.EmberStatus.NETWORK_UP)

    def _cmd_networkInit(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.nvram.formed:
            return {"status": t.EmberStatus.NOT_JOINED}
        if self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        self._network_up()
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_tokenFactoryReset(self, args: dict[str, Any]) -> dict[str, Any]:
        self.nvram.factory_reset(self.profile.key_table_size)
        self.members.clear()
        return {}

    def _cmd_clearKeyTable(self, args: dict[str, Any]) -> dict[str, Any]:
        self.nvram.key_table = [None] * self.profile.key_table_size
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_setInitialSecurityState(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        self.nvram.security = args["state"]
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_formNetwork(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        if self.nvram.security is None:
            return {"status": t.EmberStatus.SECURITY_STATE_NOT_SET}
        self.nvram.parameters = args["parameters"]
        self.nvram.formed = True
        self._network_up()
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_leaveNetwork(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        self.stack.network_up = False
        self.nvram.formed = False
        self.members.clear()
        self.nvram.neighbours.clear()
        self.callback("stackStatusHandler", status=t.EmberStatus.NETWORK_DOWN)
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_getNetworkParameters(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up or self.nvram.parameters is None:
            return {"status": t.EmberStatus.NOT_JOINED, "nodeType": t.EmberNodeType.UNKNOWN_DEVICE}
        return {
            "status": t.EmberStatus.SUCCESS,
            "nodeType": t.EmberNodeType.COORDINATOR,
            "parameters": self.nvram.parameters,
        }

    def _cmd_permitJoining(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        duration = int(args["duration"])
        now = asyncio.get_running_loop().time()
        self.stack.permit_until = float("inf") if duration == 0xFF else now + duration
        if duration and self.pairing:
            # A device in pairing mode hears the next beacon with "permit join" set.
            self._later(PAIRING_DELAY_S, self._join_pairing_devices)
        return {"status": t.EmberStatus.SUCCESS}

    def _join_pairing_devices(self) -> None:
        for device in list(self.pairing):
            result = self.join(device)
            self.join_log.append((str(as_eui64(device.eui64)), result))
            if result in (JoinResult.JOINED, JoinResult.ALREADY_JOINED):
                self.pairing.remove(device)

    # ------------------------------------------------------------------ security
    def _cmd_exportKey(self, args: dict[str, Any]) -> dict[str, Any]:
        security = self.nvram.security
        kind = args["context"].core_key_type
        zero = t.KeyData(bytes(16))
        if security is None:
            return {"key": zero, "status": t.sl_Status.OK}
        if kind == t.SecurityManagerKeyType.NETWORK:
            return {"key": security.networkKey, "status": t.sl_Status.OK}
        if kind == t.SecurityManagerKeyType.TC_LINK:
            return {"key": security.preconfiguredKey, "status": t.sl_Status.OK}
        return {"key": zero, "status": t.sl_Status.NOT_FOUND}

    def _cmd_getNetworkKeyInfo(self, args: dict[str, Any]) -> dict[str, Any]:
        security = self.nvram.security
        info = t.SecurityManagerNetworkKeyInfo(
            network_key_set=t.Bool(self.nvram.formed and security is not None),
            alternate_network_key_set=t.Bool.false,
            network_key_sequence_number=security.networkKeySequenceNumber if security else 0,
            alt_network_key_sequence_number=0,
            network_key_frame_counter=self.nvram.nwk_frame_counter,
        )
        return {"status": t.sl_Status.OK, "network_key_info": info}

    def _cmd_getCurrentSecurityState(self, args: dict[str, Any]) -> dict[str, Any]:
        bits = t.EmberCurrentSecurityBitmask.GLOBAL_LINK_KEY | t.EmberCurrentSecurityBitmask.HAVE_TRUST_CENTER_LINK_KEY
        security = self.nvram.security
        hashed = t.EmberInitialSecurityBitmask.TRUST_CENTER_USES_HASHED_LINK_KEY
        if security is not None and (security.bitmask & hashed) == hashed:
            bits |= t.EmberCurrentSecurityBitmask.TRUST_CENTER_USES_HASHED_LINK_KEY
        state = t.EmberCurrentSecurityState(bitmask=bits, trustCenterLongAddress=self.nvram.eui64)
        status = t.EmberStatus.SUCCESS if self.stack.network_up else t.EmberStatus.NOT_JOINED
        return {"status": status, "state": state}

    def _cmd_exportLinkKeyByIndex(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        entry = self.nvram.key_table[index] if index < len(self.nvram.key_table) else None
        if entry is None:
            return {"status": t.sl_Status.NOT_FOUND}
        meta = t.SecurityManagerAPSKeyMetadata(
            bitmask=t.EmberKeyStructBitmask.KEY_HAS_OUTGOING_FRAME_COUNTER
            | t.EmberKeyStructBitmask.KEY_HAS_INCOMING_FRAME_COUNTER,
            outgoing_frame_counter=entry.tx_counter,
            incoming_frame_counter=entry.rx_counter,
            ttl_in_seconds=0,
        )
        return {
            "eui64": entry.eui64,
            "plaintext_key": entry.key,
            "key_data": meta,
            "status": t.sl_Status.OK,
        }

    def _cmd_importLinkKey(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        if index >= len(self.nvram.key_table):
            return {"status": t.sl_Status.INVALID_INDEX}
        self.nvram.key_table[index] = LinkKeyEntry(eui64=args["address"], key=args["key"])
        return {"status": t.sl_Status.OK}

    def _cmd_findKeyTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        for index, entry in enumerate(self.nvram.key_table):
            if entry is not None and entry.eui64 == args["address"]:
                return {"index": index}
        return {"index": UNUSED_INDEX}

    def _cmd_eraseKeyTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        if index >= len(self.nvram.key_table):
            return {"status": t.EmberStatus.INDEX_OUT_OF_RANGE}
        self.nvram.key_table[index] = None
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_importTransientKey(self, args: dict[str, Any]) -> dict[str, Any]:
        self.stack.transient_keys[args["eui64"]] = args["plaintext_key"]
        return {"status": t.sl_Status.OK}

    # ------------------------------------------------------------------ tables
    def _children(self) -> list[Member]:
        return [m for m in self.members.values() if m.node_type != t.EmberNodeType.ROUTER]

    def _routers(self) -> list[Member]:
        return [m for m in self.members.values() if m.node_type == t.EmberNodeType.ROUTER]

    def _cmd_getChildData(self, args: dict[str, Any]) -> dict[str, Any]:
        children = self._children()
        index = int(args["index"])
        if index >= len(children):
            return {"status": t.EmberStatus.NOT_JOINED}
        child = children[index]
        data = _zero(t.EmberChildDataV10).replace(eui64=child.eui64, type=child.node_type, id=t.EmberNodeId(child.nwk))
        return {"status": t.EmberStatus.SUCCESS, "child_data": data}

    def _cmd_setChildData(self, args: dict[str, Any]) -> dict[str, Any]:
        data = args["child_data"]
        self.nvram.neighbours[data.eui64] = (int(data.id), data.type)
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_getAddressTableRemoteNodeId(self, args: dict[str, Any]) -> dict[str, Any]:
        routers = self._routers()
        index = int(args["addressTableIndex"])
        return {"nodeId": routers[index].nwk if index < len(routers) else 0xFFFF}

    def _cmd_getAddressTableRemoteEui64(self, args: dict[str, Any]) -> dict[str, Any]:
        routers = self._routers()
        index = int(args["addressTableIndex"])
        blank = t.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
        return {"eui64": routers[index].eui64 if index < len(routers) else blank}

    def _cmd_getMulticastTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        entry = self.stack.multicast.get(int(args["index"]))
        return {
            "status": t.EmberStatus.SUCCESS,
            "value": entry or _zero(t.EmberMulticastTableEntry),
        }

    def _cmd_setMulticastTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        self.stack.multicast[int(args["index"])] = args["value"]
        return {"status": t.EmberStatus.SUCCESS}

    def _member_by_nwk(self, nwk: int) -> Member | None:
        return next((m for m in self.members.values() if m.nwk == nwk), None)

    def _cmd_lookupNodeIdByEui64(self, args: dict[str, Any]) -> dict[str, Any]:
        eui = args["eui64"]
        if eui == self.nvram.eui64:
            return {"nodeId": 0x0000}
        member = self.members.get(eui)
        return {"nodeId": member.nwk if member else 0xFFFF}

    def _cmd_lookupEui64ByNodeId(self, args: dict[str, Any]) -> dict[str, Any]:
        member = self._member_by_nwk(int(args["nodeId"]))
        if member is None:
            return {"status": t.EmberStatus.ERR_FATAL}
        return {"status": t.EmberStatus.SUCCESS, "eui64": member.eui64}

    def _cmd_removeDevice(self, args: dict[str, Any]) -> dict[str, Any]:
        member = self.members.get(args["targetLong"])
        if member is None:
            return {"status": t.EmberStatus.INVALID_CALL}
        self._leave(member)
        return {"status": t.EmberStatus.SUCCESS}

    # ------------------------------------------------------------------ messaging
    def _cmd_sendUnicast(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        aps: t.EmberApsFrame = args["apsFrame"].replace(sequence=t.uint8_t(self.stack.next_aps_sequence()))
        nwk = int(args["indexOrDestination"])
        tag = int(args["messageTag"])
        payload = bytes(args["messageContents"])

        def sent(status: t.EmberStatus) -> None:
            self.counters[
                t.EmberCounterType.COUNTER_APS_DATA_TX_UNICAST_SUCCESS
                if status == t.EmberStatus.SUCCESS
                else t.EmberCounterType.COUNTER_APS_DATA_TX_UNICAST_FAILED
            ] += 1
            self.callback(
                "messageSentHandler",
                type=t.EmberOutgoingMessageType.OUTGOING_DIRECT,
                indexOrDestination=nwk,
                apsFrame=aps,
                messageTag=tag,
                status=status,
                messageContents=t.LVBytes(payload),
            )

        if nwk == 0x0000:
            sent(t.EmberStatus.SUCCESS)
            if aps.profileId == 0:
                self._answer_zdo(None, aps, payload)
            return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

        member = self._member_by_nwk(nwk)
        encrypted = bool(aps.options & t.EmberApsOption.APS_OPTION_ENCRYPTION)
        needs_aps = member is not None and bool(getattr(member.device, "requires_aps_encryption", False))
        refused = needs_aps and not encrypted and aps.profileId != 0
        if member is None or not member.reachable or refused:
            # No APS ACK arrives: the stack retries, then reports the failure.
            self._later(NO_ACK_DELAY_S, lambda: sent(t.EmberStatus.DELIVERY_FAILED))
            return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

        def acked() -> None:
            if member.eui64 not in self.members or not member.reachable:
                sent(t.EmberStatus.DELIVERY_FAILED)
                return
            sent(t.EmberStatus.SUCCESS)
            if aps.profileId == 0:
                self._answer_zdo(member, aps, payload)
            else:
                member.esi_endpoint = int(aps.sourceEndpoint)
                self._deliver(member, aps.clusterId, payload)

        self._later(self.profile.aps_ack_delay_s, acked)
        return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

    def _cmd_sendBroadcast(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        aps = args["apsFrame"].replace(sequence=t.uint8_t(self.stack.next_aps_sequence()))
        self.callback(
            "messageSentHandler",
            type=t.EmberOutgoingMessageType.OUTGOING_BROADCAST,
            indexOrDestination=int(args["destination"]),
            apsFrame=aps,
            messageTag=int(args["messageTag"]),
            status=t.EmberStatus.SUCCESS,
            messageContents=args["messageContents"],
        )
        return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

    def _cmd_sendMulticast(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        return {"status": t.EmberStatus.SUCCESS, "sequence": self.stack.next_aps_sequence()}

    def _deliver(self, member: Member, cluster_id: int, payload: bytes) -> None:
        result = member.device.deliver(cluster_id, payload)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _incoming(
        self,
        *,
        sender: int,
        profile: int,
        cluster: int,
        src_ep: int,
        dst_ep: int,
        payload: bytes,
        options: t.EmberApsOption,
        sequence: int,
    ) -> None:
        self.counters[t.EmberCounterType.COUNTER_APS_DATA_RX_UNICAST] += 1
        aps = t.EmberApsFrame(
            profileId=profile,
            clusterId=cluster,
            sourceEndpoint=src_ep,
            destinationEndpoint=dst_ep,
            options=options,
            groupId=0,
            sequence=sequence,
        )
        self.callback(
            "incomingMessageHandler",
            type=t.EmberIncomingMessageType.INCOMING_UNICAST,
            apsFrame=aps,
            lastHopLqi=INCOMING_LQI,
            lastHopRssi=INCOMING_RSSI,
            sender=t.EmberNodeId(sender),
            bindingIndex=UNUSED_INDEX,
            addressIndex=UNUSED_INDEX,
            messageContents=t.LVBytes(payload),
        )

    def _esi_endpoint(self, cluster_id: int) -> int:
        se = [(ep, ins) for ep, (prof, ins, _outs) in sorted(self.stack.endpoints.items()) if prof == SE_PROFILE_ID]
        for ep, ins in se:
            if cluster_id in ins:
                return ep
        return se[0][0] if se else 1

    def uplink_from(self, member: Member, cluster_id: int, zcl_frame: bytes) -> bool:
        """A device transmits a ZCL frame to the coordinator. False if it cannot be heard."""
        if member.eui64 not in self.members or not member.reachable or not self.stack.network_up:
            return False
        member.aps_counter = (member.aps_counter + 1) % 256
        self._incoming(
            sender=member.nwk,
            profile=member.profile_id,
            cluster=cluster_id,
            src_ep=member.endpoint,
            dst_ep=member.esi_endpoint or self._esi_endpoint(cluster_id),
            payload=zcl_frame,
            options=t.EmberApsOption.APS_OPTION_ENCRYPTION | t.EmberApsOption.APS_OPTION_RETRY,
            sequence=member.aps_counter,
        )
        return True

    # ------------------------------------------------------------------ ZDO requests from devices
    def zdo_from(self, member: Member, cluster_id: int, payload: bytes) -> bool:
        """A device sends a ZDO request to the coordinator (or broadcasts it). The EmberZNet stack
        answers Match_Desc from the endpoints the host added and keeps Bind_req/Unbind_req naming
        this node as source in its binding table; with APPLICATION_ZDO_FLAGS as bellows sets them
        (APP_RECEIVES_SUPPORTED_ZDO_REQUESTS) the host also gets a copy of each request."""
        if member.eui64 not in self.members or not member.reachable or not self.stack.network_up:
            return False
        reply = self._stack_zdo_answer(cluster_id, payload)
        if reply is not None:
            deliver = getattr(member.device, "deliver_zdo", None)
            if deliver is not None:
                self._later(self.profile.aps_ack_delay_s, lambda: deliver(*reply))
        self._incoming(
            sender=member.nwk,
            profile=0,
            cluster=cluster_id,
            src_ep=0,
            dst_ep=0,
            payload=payload,
            options=t.EmberApsOption.APS_OPTION_NONE,
            sequence=self.stack.next_aps_sequence(),
        )
        return True

    def _stack_zdo_answer(self, cluster_id: int, payload: bytes) -> tuple[int, bytes] | None:
        try:
            command = zdo_t.ZDOCmd(cluster_id)
            args, _ = zt.deserialize(payload[1:], zdo_t.CLUSTERS[command][1])
        except (ValueError, KeyError):
            return None
        status = zdo_t.Status.SUCCESS
        values: list[Any]
        if command == zdo_t.ZDOCmd.Match_Desc_req:
            _nwk, profile, in_clusters, out_clusters = args
            # The request names the clusters it looks for on the remote: in = servers, out = clients.
            matches = [
                ep
                for ep, (prof, ins, outs) in sorted(self.stack.endpoints.items())
                if prof == profile and (set(in_clusters) & set(ins) or set(out_clusters) & set(outs))
            ]
            rsp, values = zdo_t.ZDOCmd.Match_Desc_rsp, [status, 0x0000, matches]
        elif command in (zdo_t.ZDOCmd.Bind_req, zdo_t.ZDOCmd.Unbind_req):
            src, src_ep, cluster, dst = args
            entry = (int(src_ep), int(cluster), t.EUI64(dst.ieee), int(dst.endpoint))
            bind = command == zdo_t.ZDOCmd.Bind_req
            rsp = zdo_t.ZDOCmd.Bind_rsp if bind else zdo_t.ZDOCmd.Unbind_rsp
            if t.EUI64(src) != self.nvram.eui64:
                status = zdo_t.Status.NOT_SUPPORTED  # a binding on another node's behalf
            elif int(src_ep) not in self.stack.endpoints:
                status = zdo_t.Status.INVALID_EP
            elif bind and entry not in self.nvram.bindings:
                if len(self.nvram.bindings) >= self.profile.binding_table_size:
                    status = zdo_t.Status.TABLE_FULL
                else:
                    self.nvram.bindings.append(entry)
            elif not bind:
                if entry in self.nvram.bindings:
                    self.nvram.bindings.remove(entry)
                else:
                    status = zdo_t.Status.NO_ENTRY
            values = [status]
        else:
            return None
        return int(rsp), bytes([payload[0]]) + zt.serialize(values, zdo_t.CLUSTERS[rsp][1])

    # ------------------------------------------------------------------ ZDO on behalf of nodes
    def _answer_zdo(self, member: Member | None, aps: t.EmberApsFrame, payload: bytes) -> None:
        if not payload:
            return
        tsn, body = payload[0], payload[1:]
        try:
            command = zdo_t.ZDOCmd(aps.clusterId)
            _names, types = zdo_t.CLUSTERS[command]
            args, _ = zt.deserialize(body, types)
        except (ValueError, KeyError):
            return
        nwk = 0x0000 if member is None else member.nwk
        reply: tuple[zdo_t.ZDOCmd, list[Any]] | None = None
        ok = zdo_t.Status.SUCCESS
        if command == zdo_t.ZDOCmd.Node_Desc_req:
            reply = (zdo_t.ZDOCmd.Node_Desc_rsp, [ok, nwk, self._node_descriptor(member)])
        elif command == zdo_t.ZDOCmd.Active_EP_req:
            eps = sorted(self.stack.endpoints) if member is None else [member.endpoint]
            reply = (zdo_t.ZDOCmd.Active_EP_rsp, [ok, nwk, eps])
        elif command == zdo_t.ZDOCmd.Simple_Desc_req:
            reply = (zdo_t.ZDOCmd.Simple_Desc_rsp, self._simple_desc(member, nwk, int(args[1])))
        elif command == zdo_t.ZDOCmd.Mgmt_Leave_req and member is not None:
            reply = (zdo_t.ZDOCmd.Mgmt_Leave_rsp, [ok])
        elif command in (zdo_t.ZDOCmd.Bind_req, zdo_t.ZDOCmd.Unbind_req):
            bind = command == zdo_t.ZDOCmd.Bind_req
            reply = (zdo_t.ZDOCmd.Bind_rsp if bind else zdo_t.ZDOCmd.Unbind_rsp, [ok])
        elif command == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req:
            reply = (zdo_t.ZDOCmd.Mgmt_Permit_Joining_rsp, [ok])
        if reply is None:
            return
        rsp_cmd, values = reply
        _names, rsp_types = zdo_t.CLUSTERS[rsp_cmd]
        data = bytes([tsn]) + zt.serialize(values, rsp_types)
        self._incoming(
            sender=nwk,
            profile=0,
            cluster=rsp_cmd,
            src_ep=0,
            dst_ep=0,
            payload=data,
            options=t.EmberApsOption.APS_OPTION_NONE,
            sequence=self.stack.next_aps_sequence(),
        )
        if command == zdo_t.ZDOCmd.Mgmt_Leave_req and member is not None:
            self._leave(member)

    def _node_descriptor(self, member: Member | None) -> zdo_t.NodeDescriptor:
        if member is None:
            logical, mac = zdo_t.LogicalType.Coordinator, 0x8E
        elif member.node_type == t.EmberNodeType.ROUTER:
            logical, mac = zdo_t.LogicalType.Router, 0x8E
        else:
            logical, mac = zdo_t.LogicalType.EndDevice, 0x80
        return zdo_t.NodeDescriptor(
            logical_type=logical,
            complex_descriptor_available=0,
            user_descriptor_available=0,
            reserved=0,
            aps_flags=0,
            frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
            mac_capability_flags=zdo_t.NodeDescriptor.MACCapabilityFlags(mac),
            manufacturer_code=MANUFACTURER_CODE,
            maximum_buffer_size=82,
            maximum_incoming_transfer_size=128,
            server_mask=0x2C00 if member is None else 0x0000,
            maximum_outgoing_transfer_size=128,
            descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability(0),
        )

    def _simple_desc(self, member: Member | None, nwk: int, endpoint: int) -> list[Any]:
        if member is None:
            if endpoint not in self.stack.endpoints:
                return [zdo_t.Status.NOT_ACTIVE, nwk, None]
            profile, ins, outs = self.stack.endpoints[endpoint]
            device_type = 0x0005
        else:
            if endpoint != member.endpoint:
                return [zdo_t.Status.NOT_ACTIVE, nwk, None]
            profile, ins, outs = member.profile_id, member.input_clusters, member.output_clusters
            device_type = member.device_type
        desc = zdo_t.SizePrefixedSimpleDescriptor(
            endpoint=endpoint,
            profile=profile,
            device_type=device_type,
            device_version=0,
            input_clusters=ins,
            output_clusters=outs,
        )
        return [zdo_t.Status.SUCCESS, nwk, desc]

    # ------------------------------------------------------------------ joining and leaving
    def join(self, device: HanDevice) -> JoinResult:
        """A device associates and asks the trust center for the network key."""
        eui = as_eui64(device.eui64)
        if eui in self.members:
            return JoinResult.ALREADY_JOINED
        now = asyncio.get_running_loop().time()
        if not self.stack.network_up or now >= self.stack.permit_until:
            return JoinResult.NOT_PERMITTED  # no beacon with "permit join": nothing reaches the TC
        policy = self.stack.policies.get(t.EzspPolicyId.TRUST_CENTER_POLICY, 0)
        transient = self.stack.transient_keys.get(eui)
        key = link_key_of(device)
        taken = {m.nwk for m in self.members.values()}
        nwk = nwk_for(eui, taken)
        result = JoinResult.JOINED
        if not policy & t.EzspDecisionBitmask.ALLOW_JOINS:
            result = JoinResult.NOT_PERMITTED
        elif policy & t.EzspDecisionBitmask.JOINS_USE_INSTALL_CODE_KEY or transient is not None:
            if transient is None:
                result = JoinResult.NO_KEY
            elif transient != key:
                # The TC sends the network key under the registered key; the device cannot
                # decrypt it and gives up. The emulated TC reports that outcome as a denial.
                result = JoinResult.WRONG_KEY
        elif key is None or key != t.KeyData(b"ZigBeeAlliance09"):
            result = JoinResult.NO_KEY
        if result is not JoinResult.JOINED:
            self.callback(
                "trustCenterJoinHandler",
                newNodeId=t.EmberNodeId(nwk),
                newNodeEui64=eui,
                status=t.EmberDeviceUpdate.STANDARD_SECURITY_UNSECURED_JOIN,
                policyDecision=t.EmberJoinDecision.DENY_JOIN,
                parentOfNewNodeId=0x0000,
            )
            return result
        member = Member(device=device, eui64=eui, nwk=nwk, link_key=key)
        self.members[eui] = member
        self.nvram.neighbours[eui] = (nwk, member.node_type)
        self.stack.transient_keys.pop(eui, None)
        if member.node_type != t.EmberNodeType.ROUTER:
            self.callback(
                "childJoinHandler",
                index=len(self._children()) - 1,
                joining=t.Bool.true,
                childId=t.EmberNodeId(nwk),
                childEui64=eui,
                childType=member.node_type,
            )
        self.callback(
            "trustCenterJoinHandler",
            newNodeId=t.EmberNodeId(nwk),
            newNodeEui64=eui,
            status=t.EmberDeviceUpdate.STANDARD_SECURITY_UNSECURED_JOIN,
            policyDecision=t.EmberJoinDecision.USE_PRECONFIGURED_KEY,
            parentOfNewNodeId=0x0000,
        )
        device.attach(lambda cluster_id, frame: self.uplink_from(member, cluster_id, frame))
        attach_zdo = getattr(device, "attach_zdo", None)
        if attach_zdo is not None:  # a device that does SE service discovery and binding
            attach_zdo(lambda cluster_id, payload: self.zdo_from(member, cluster_id, payload), self.nvram.eui64)
        device.on_joined()
        return result

    def _leave(self, member: Member) -> None:
        self.members.pop(member.eui64, None)
        self.nvram.neighbours.pop(member.eui64, None)
        self.callback(
            "trustCenterJoinHandler",
            newNodeId=t.EmberNodeId(member.nwk),
            newNodeEui64=member.eui64,
            status=t.EmberDeviceUpdate.DEVICE_LEFT,
            policyDecision=t.EmberJoinDecision.NO_ACTION,
            parentOfNewNodeId=0x0000,
        )

    def leave(self, device: HanDevice) -> bool:
        """The device leaves the network on its own (announces it)."""
        member = self.members.get(as_eui64(device.eui64))
        if member is None:
            return False
        self._leave(member)
        return True

    def set_reachable(self, device: HanDevice, reachable: bool) -> None:
        """Power a device off (frames to it fail) or on again, without it leaving."""
        member = self.members.get(as_eui64(device.eui64))
        if member is not None:
            member.reachable = reachable
