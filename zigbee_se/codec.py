"""Encode and decode whole ZCL frames of the SE clusters: the public entry points."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from zigbee_se.clusters import resolve_cluster
from zigbee_se.commands import drlc, messaging, price
from zigbee_se.compiler import (
    Decoder,
    Encoder,
    FrameEncoder,
    compile_decoder,
    compile_encoder,
    compile_frame_encoder,
)
from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.foundation import GLOBAL_BY_ID, GLOBAL_BY_NAME
from zigbee_se.header import FrameType, decode_header, encode_header
from zigbee_se.schema import CommandDef, Direction, Field
from zigbee_se.types import CharString
from zigbee_se.versions import SEVersion

DEFAULT_SE_VERSION = SEVersion.V1_1

DEFAULT_MAX_FRAME_SIZE = 73
"""Bytes of ZCL frame (header + payload) that fit one APS-secured 802.15.4 frame without source
routing or fragmentation (SE_FRAMES.md §1.2). Routes whose meters fragment (e.g. 80-character
Landis+Gyr modules) pass their own budget; None disables the check."""

ALL_COMMANDS: tuple[CommandDef, ...] = price.COMMANDS + drlc.COMMANDS + messaging.COMMANDS


@dataclass(slots=True)
class _Compiled:
    definition: CommandDef
    encoders: dict[SEVersion, Encoder]
    frame_encoders: dict[SEVersion, FrameEncoder]
    decoder: Decoder
    string_fields: tuple[Field, ...]


class DecodedFrame(NamedTuple):
    """A decoded ZCL frame: header values, the command's fields (raw wire values) and any unknown
    trailing bytes. A tuple, because the decoder builds one per frame and a tuple is the cheapest
    object Python makes."""

    cluster: int
    command: str
    direction: Direction
    frame_type: FrameType
    tsn: int
    command_id: int
    disable_default_response: bool
    manufacturer_code: int | None
    fields: dict[str, Any]
    trailing: bytes = b""


_new_tuple = tuple.__new__


# (cluster, command, se_version) exactly as callers pass them -> what encode_frame needs, so the
# common call skips name resolution. Bounded: odd spellings of a cluster cannot grow it forever.
_FRAME_CACHE: dict[tuple[Any, str, Any], tuple[_Compiled, FrameEncoder, int]] = {}
_FRAME_CACHE_MAX = 1024

# name -> per-cluster list of definitions (PublishBlockPeriod has one per layout)
_BY_NAME: dict[tuple[int, str], list[_Compiled]] = {}
_BY_ID: dict[tuple[int, Direction, int], list[_Compiled]] = {}


def _register(cmd: CommandDef) -> None:
    encoders = {v: compile_encoder(cmd, v) for v in SEVersion if v >= cmd.since}
    frame_encoders = {v: compile_frame_encoder(cmd, v, enc) for v, enc in encoders.items()}
    strings = tuple(f for f in cmd.fields if isinstance(f, Field) and isinstance(f.type, CharString))
    compiled = _Compiled(cmd, encoders, frame_encoders, compile_decoder(cmd), strings)
    _BY_NAME.setdefault((cmd.cluster, cmd.name), []).append(compiled)
    _BY_ID.setdefault((cmd.cluster, cmd.direction, cmd.command_id), []).append(compiled)


for _cmd in ALL_COMMANDS:
    _register(_cmd)
for _versions in _BY_NAME.values():
    _versions.sort(key=lambda c: c.definition.since)


def command_definitions(cluster: int | str, command: str) -> list[CommandDef]:
    """Every layout of a cluster-specific command, oldest first."""
    cluster_id = resolve_cluster(cluster)
    return [c.definition for c in _lookup(cluster_id, command)]


def commands_of(cluster: int | str) -> list[str]:
    cluster_id = resolve_cluster(cluster)
    return sorted({name for (cid, name) in _BY_NAME if cid == cluster_id})


def _lookup(cluster_id: int, command: str) -> list[_Compiled]:
    found = _BY_NAME.get((cluster_id, command))
    if found is None:
        known = commands_of(cluster_id) + sorted(GLOBAL_BY_NAME)
        raise EncodeError("command", command, f"one of {', '.join(known)} for cluster 0x{cluster_id:04x}")
    return found


def encode_payload(
    cluster: int | str,
    command: str,
    fields: Mapping[str, Any],
    *,
    se_version: SEVersion | str = DEFAULT_SE_VERSION,
) -> bytes:
    """The command payload alone (no ZCL header), as the target SE version lays it out."""
    cluster_id = resolve_cluster(cluster)
    version = SEVersion.parse(se_version)
    return _encoder(cluster_id, command, version)[1](fields)


def _encoder(cluster_id: int, command: str, version: SEVersion) -> tuple[_Compiled, Encoder]:
    layouts = _lookup(cluster_id, command)
    chosen = None
    for compiled in layouts:
        if compiled.definition.since <= version:
            chosen = compiled
    if chosen is None:
        raise EncodeError(
            "se_version", str(version), f"{command} is defined from SE {layouts[0].definition.since}"
        )
    return chosen, chosen.encoders[version]


def encode_frame(
    cluster: int | str,
    command: str,
    fields: Mapping[str, Any],
    *,
    se_version: SEVersion | str = DEFAULT_SE_VERSION,
    tsn: int = 0,
    disable_default_response: bool = False,
    manufacturer_code: int | None = None,
    direction: Direction | None = None,
    max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """A whole ZCL frame (header + payload) for `command` of `cluster`, laid out for `se_version`.

    Fields the target version does not define must be absent (or at their "not used" value);
    optional fields left out take their "not used" sentinel. `direction` is needed only for the
    global commands that go both ways (Default Response); cluster commands know theirs."""
    entry = None
    # Exactly int or str: 1795.0 (or True) hashes and compares equal to a cached int key, and must
    # get the general path's typed error instead of another cluster's frame.
    if type(cluster) in (int, str):
        try:
            entry = _FRAME_CACHE.get((cluster, command, se_version))
        except TypeError:  # an unhashable argument: the general path says what is wrong with it
            entry = None
    if entry is not None and manufacturer_code is None and direction is None:
        compiled, frame_encoder, fc = entry
        frame = frame_encoder(fields, fc | 0x10 if disable_default_response else fc, tsn)
        if max_frame_size is not None and len(frame) > max_frame_size:
            _check_budget(frame, max_frame_size, compiled, SEVersion.parse(se_version), fields)
        return frame
    if not isinstance(fields, Mapping):
        raise EncodeError("fields", fields, "an object of field names to values")
    cluster_id = resolve_cluster(cluster)
    version = SEVersion.parse(se_version)
    glob = GLOBAL_BY_NAME.get(command)
    if glob is not None:
        frame_dir = glob.default_direction if direction is None else Direction(direction)
        server = glob.server_side(frame_dir)
        header = encode_header(
            FrameType.GLOBAL, frame_dir, tsn, glob.command_id,
            disable_default_response=disable_default_response, manufacturer_code=manufacturer_code,
        )
        frame = header + glob.encode(cluster_id, server, fields)
        _check_budget(frame, max_frame_size, None, version, fields)
        return frame
    compiled, encoder = _encoder(cluster_id, command, version)
    definition = compiled.definition
    if manufacturer_code is not None:
        # The manufacturer-specific bit moves the command id into that manufacturer's own command
        # space: the frame would no longer be this SE command (a receiver, Wireshark included,
        # would read it as an unknown proprietary command).
        raise EncodeError(
            "manufacturer_code", manufacturer_code,
            f"absent for the standard SE command {command} (only global commands may carry one)",
        )
    if direction is not None and direction != definition.direction:
        raise EncodeError("direction", str(Direction(direction)), f"{command} goes {definition.direction}")
    if manufacturer_code is None:
        fc = 0x01 | (0x08 if definition.direction else 0)
        if len(_FRAME_CACHE) < _FRAME_CACHE_MAX:
            _FRAME_CACHE[(cluster, command, se_version)] = (compiled, compiled.frame_encoders[version], fc)
        frame = compiled.frame_encoders[version](fields, fc | 0x10 if disable_default_response else fc, tsn)
    else:
        payload = encoder(fields)
        frame = encode_header(
            FrameType.CLUSTER, definition.direction, tsn, definition.command_id,
            disable_default_response=disable_default_response, manufacturer_code=manufacturer_code,
        ) + payload
    if max_frame_size is not None and len(frame) > max_frame_size:
        _check_budget(frame, max_frame_size, compiled, version, fields)
    return frame


def _check_budget(
    frame: bytes,
    budget: int | None,
    compiled: _Compiled | None,
    version: SEVersion,
    fields: Mapping[str, Any],
) -> None:
    if budget is None or len(frame) <= budget:
        return
    excess = len(frame) - budget
    if compiled is not None and compiled.string_fields:
        # Blame the variable-length text: it is what the caller can shorten.
        name = compiled.string_fields[0].name
        text = fields.get(name)
        size = len(text.encode("utf-8")) if isinstance(text, str) else 0
        raise EncodeError(
            name, text,
            f"at most {max(size - excess, 0)} bytes of UTF-8 fit the {budget}-byte single-frame "
            f"budget at SE {version}; this text is {size} bytes, {excess} too many",
        )
    raise EncodeError(
        "frame", len(frame), f"at most {budget} bytes (the single-frame budget); over by {excess}"
    )


def max_text_bytes(
    command: str = "display_message",
    *,
    se_version: SEVersion | str = DEFAULT_SE_VERSION,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    manufacturer_specific: bool = False,
) -> int:
    """How many UTF-8 bytes of message text fit the single-frame budget for this version."""
    version = SEVersion.parse(se_version)
    compiled, _ = _encoder(0x0703, command, version)
    fixed = 0
    for item in compiled.definition.fields_for(version):
        size = 1 if not isinstance(item, Field) else item.type.size
        fixed += 1 if size == -1 else size  # a string costs its length byte
    header = 5 if manufacturer_specific else 3
    return max(0, min(254, max_frame_size - header - fixed))


_DIRECTIONS = (Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT)
# (cluster as callers pass it, direction bit, command id) -> the one layout of that command
_DECODE_CACHE: dict[tuple[Any, int, int], _Compiled] = {}


def decode_frame(
    cluster: int | str, frame: bytes | bytearray | memoryview, *, se_version: SEVersion | str | None = None
) -> DecodedFrame:
    """Decode a whole ZCL frame. Raises only DecodeError, whatever the bytes.

    `se_version` picks the layout where versions disagree on one command id (PublishBlockPeriod);
    without it the layout is inferred from the payload length."""
    if frame.__class__ is not bytes:
        try:
            frame = bytes(memoryview(frame))
        except TypeError:
            raise DecodeError(0, f"frame: expected bytes, not {type(frame).__name__}") from None
    data: bytes = frame
    if len(data) >= 3 and data[0] & 0x07 == 0x01:
        # Fast path: a cluster-specific frame without manufacturer code, command already seen.
        fc = data[0]
        try:
            compiled = _DECODE_CACHE.get((cluster, fc & 0x08, data[2]))
        except TypeError:
            compiled = None
        if compiled is not None:
            fields, end = compiled.decoder(data, 3)
            definition = compiled.definition
            decoded: DecodedFrame = _new_tuple(DecodedFrame, (  # the NamedTuple's __new__, minus a call
                definition.cluster, definition.name, definition.direction, FrameType.CLUSTER,
                data[1], data[2], bool(fc & 0x10), None, fields, data[end:] if end < len(data) else b"",
            ))
            return decoded
    try:
        cluster_id = resolve_cluster(cluster)
    except EncodeError as exc:
        raise DecodeError(0, f"cluster: {exc.limit}") from None
    header = decode_header(data)
    o = header.size
    if header.frame_type == FrameType.GLOBAL:
        glob = GLOBAL_BY_ID.get(header.command_id)
        if glob is None:
            raise DecodeError(o - 1, f"global command 0x{header.command_id:02x} is not supported")
        fields, end = glob.decode(cluster_id, glob.server_side(header.direction), data, o)
        name = glob.name
    else:
        if header.manufacturer_code is not None:
            raise DecodeError(
                o - 1,
                f"manufacturer-specific command 0x{header.command_id:02x} of manufacturer "
                f"0x{header.manufacturer_code:04x} is not known",
            )
        layouts = _BY_ID.get((cluster_id, header.direction, header.command_id))
        if layouts is None:
            raise DecodeError(
                o - 1,
                f"command 0x{header.command_id:02x} {header.direction} is not known for cluster "
                f"0x{cluster_id:04x}",
            )
        if len(layouts) == 1 and len(_DECODE_CACHE) < _FRAME_CACHE_MAX:
            with contextlib.suppress(TypeError):  # an unhashable cluster argument: just don't cache
                _DECODE_CACHE[(cluster, data[0] & 0x08, header.command_id)] = layouts[0]
        compiled = _pick_layout(layouts, len(data) - o, se_version)
        fields, end = compiled.decoder(data, o)
        name = compiled.definition.name
    return DecodedFrame(
        cluster_id, name, header.direction, header.frame_type, header.tsn, header.command_id,
        header.disable_default_response, header.manufacturer_code, fields, data[end:],
    )


def _pick_layout(
    layouts: list[_Compiled], payload_size: int, se_version: SEVersion | str | None
) -> _Compiled:
    if len(layouts) == 1:
        return layouts[0]
    if se_version is not None:
        try:
            version = SEVersion.parse(se_version)
        except EncodeError as exc:
            raise DecodeError(0, f"se_version: {exc.limit}") from None
        chosen = layouts[0]
        for compiled in layouts:
            if compiled.definition.since <= version:
                chosen = compiled
        return chosen
    # PublishBlockPeriod: 17 bytes is the SE 1.1 layout, 19 or more the SE 1.2 one.
    sizes = [sum(1 if not isinstance(i, Field) else i.type.size for i in c.definition.fields) for c in layouts]
    for compiled, size in zip(layouts, sizes, strict=True):
        if payload_size == size:
            return compiled
    return layouts[-1]
