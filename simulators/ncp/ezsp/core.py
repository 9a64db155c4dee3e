# mypy: disable-error-code="no-untyped-call"
# (zigpy's ZDO types and (de)serializers carry no annotations.)
"""The EZSP command processor's core: ASH wiring, framing, dispatch to the chapters' handlers, callbacks.

Requests are decoded and responses encoded with bellows' own command table
(`bellows.ezsp.v13.commands.COMMANDS`: name -> (frame id, request schema, response schema)) and
`bellows.types`, so the emulator and the host cannot disagree about a field. Commands that need
behaviour have a `_cmd_<name>` method in the module of their EZSP chapter; every other known command
gets the all-zero response (status SUCCESS), which is what firmware answers for the many
configuration calls bellows makes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bellows.types as t
from bellows.ash import NcpFailure
from bellows.ezsp.v13.commands import COMMANDS

from simulators.ncp.ash import NcpAshProtocol
from simulators.ncp.han import (
    EmulatedDevice,
    JoinResult,
    Member,
)
from simulators.ncp.profile import CoordinatorProfile
from simulators.ncp.state import Nvram, StackState

LOGGER = logging.getLogger(__name__)

COMMANDS_BY_ID = {cmd_id: (name, tx, rx) for name, (cmd_id, tx, rx) in COMMANDS.items()}

# Frame control, low byte (ezsp-protocol.h): responses have 0x80; callbacks add 0x10 (async).
FC_RESPONSE = 0x80
FC_ASYNC_CALLBACK = 0x10
FC_HIGH_FORMAT_1 = 0x01  # frame format version 1: 16-bit frame ids (EZSP v8+)
LEGACY_VERSION_FRAME_ID = 0x00
INCOMING_LQI = 255
INCOMING_RSSI = -45
UNUSED_INDEX = 0xFF


def zero_value(typ: Any) -> Any:
    """The all-zero value of a bellows/zigpy type, as firmware's zeroed response buffer holds."""
    if isinstance(typ, type) and issubclass(typ, list) and getattr(typ, "_length", None) is None:
        return typ()  # variable-length lists (counters, cluster lists) are empty
    value, _ = typ.deserialize(bytes(512))
    return value


def encode_fields(schema: Any, fields: dict[str, Any]) -> bytes:
    if isinstance(schema, dict):
        full = {name: fields[name] if name in fields else zero_value(typ) for name, typ in schema.items()}
        return bytes(t.serialize_dict([], full, schema))
    return bytes(schema(**fields).serialize())


class NcpCore:
    """One emulated coordinator's state and its EZSP framing; the chapter mixins add the commands."""

    if TYPE_CHECKING:
        # What one chapter calls in another; `EzspNcp` (the package's __init__) combines them all.
        def join(self, device: EmulatedDevice) -> JoinResult: ...
        def _leave(self, member: Member) -> None: ...
        def uplink_from(self, member: Member, cluster_id: int, zcl_frame: bytes) -> bool: ...
        def zdo_from(self, member: Member, cluster_id: int, payload: bytes) -> bool: ...
        def _answer_zdo(self, member: Member | None, aps: t.EmberApsFrame, payload: bytes) -> None: ...

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
        self.pairing: list[EmulatedDevice] = []
        self.join_log: list[tuple[str, JoinResult]] = []

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

    def _member_by_nwk(self, nwk: int) -> Member | None:
        return next((m for m in self.members.values() if m.nwk == nwk), None)

    def _children(self) -> list[Member]:
        return [m for m in self.members.values() if m.node_type != t.EmberNodeType.ROUTER]

    def _routers(self) -> list[Member]:
        return [m for m in self.members.values() if m.node_type == t.EmberNodeType.ROUTER]
