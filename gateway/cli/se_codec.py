"""`hangw se encode|decode`: the SE codec from a terminal or a script (one JSON object per line)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import zigbee_se
from zigbee_se import DecodeError, EncodeError, SECodecError
from zigbee_se.attributes import DATA_TYPES, find_attribute
from zigbee_se.foundation import GLOBAL_BY_NAME
from zigbee_se.types import FixedOctets


class InputError(ValueError):
    """A batch line or argument that is not even well-formed (not JSON, not hex...)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def register(subparsers: Any) -> None:
    se = subparsers.add_parser("se", help="encode and decode Smart Energy ZCL frames")
    sub = se.add_subparsers(dest="se_command", metavar="ACTION", required=True)

    enc = sub.add_parser(
        "encode",
        help="fields (JSON) -> whole ZCL frame (hex)",
        description="Print the whole ZCL frame (header + payload) as lowercase hex. With '-' as the "
        "only argument, read one JSON object per line from stdin "
        '({"cluster", "command", "fields", "se_version"?, "tsn"?}) and write one line per input line.',
    )
    enc.add_argument("cluster", help="price, drlc, messaging, metering, time, or a cluster id; '-' for batch")
    enc.add_argument("command", nargs="?", help="snake_case command name, e.g. display_message")
    enc.add_argument("fields", nargs="?", help="JSON object of field values")
    enc.add_argument("--se-version", default=str(zigbee_se.DEFAULT_SE_VERSION), choices=["1.0", "1.1", "1.2"])
    enc.add_argument("--tsn", type=int, default=0, help="transaction sequence number (0..255)")
    enc.add_argument("--disable-default-response", action="store_true")
    enc.add_argument("--manufacturer-code", type=lambda s: int(s, 0), default=None)
    enc.add_argument(
        "--max-frame-size", type=int, default=zigbee_se.DEFAULT_MAX_FRAME_SIZE,
        help=f"single-frame budget in bytes (default {zigbee_se.DEFAULT_MAX_FRAME_SIZE}; 0 = no check)",
    )
    enc.set_defaults(func=_encode_main)

    dec = sub.add_parser(
        "decode",
        help="whole ZCL frame (hex) -> JSON",
        description="Print one JSON object: cluster, command, direction, tsn, manufacturer_code (if "
        "any), fields (raw wire values) and trailing (hex of unknown trailing bytes, if any). With "
        "'-' as the only argument, read 'CLUSTER HEX' per line from stdin.",
    )
    dec.add_argument("cluster", help="cluster name or id; '-' for batch")
    dec.add_argument("hex", nargs="?", help="the frame, hex (spaces and colons allowed)")
    dec.add_argument("--se-version", default=None, choices=["1.0", "1.1", "1.2"],
                     help="layout where versions disagree (PublishBlockPeriod); default: by length")
    dec.set_defaults(func=_decode_main)


# ------------------------------------------------------------------------------------ encode


def _octet_fields(cluster: int, command: str) -> set[str]:
    names: set[str] = set()
    try:
        for definition in zigbee_se.command_definitions(cluster, command):
            for item in definition.fields:
                if isinstance(item, zigbee_se.Field) and isinstance(item.type, FixedOctets):
                    names.add(item.name)
    except EncodeError:
        pass
    return names


def _from_json(cluster: int, command: str, fields: Any) -> Any:
    """JSON has no bytes: fixed octet fields and octet-typed attribute values come as hex."""
    if not isinstance(fields, dict):
        raise InputError("fields", f"fields must be a JSON object, not {type(fields).__name__}")
    out = dict(fields)
    for name in _octet_fields(cluster, command) & out.keys():
        out[name] = _hex(out[name], name)
    if command in GLOBAL_BY_NAME and isinstance(out.get("records"), list):
        records = []
        for i, given in enumerate(out["records"]):
            record = given
            if isinstance(record, dict) and isinstance(record.get("value"), str):
                type_id = record.get("data_type")
                attr = record.get("attribute_id")
                if type_id is None and isinstance(attr, int):
                    known = find_attribute(cluster, attr)
                    type_id = known.data_type if known else None
                if isinstance(type_id, int) and DATA_TYPES.get(type_id, ("", 0, ""))[2] == "octets":
                    record = {**record, "value": _hex(record["value"], f"records[{i}].value")}
            records.append(record)
        out["records"] = records
    return out


def _hex(value: Any, field: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return bytes.fromhex(value.replace(":", "").replace(" ", ""))
    except ValueError:
        raise InputError(field, f"{field}: {value!r} is not hex") from None


def encode_one(
    cluster: Any, command: Any, fields: Any, *, se_version: str, tsn: int,
    disable_default_response: bool, manufacturer_code: int | None, max_frame_size: int | None,
) -> str:
    if not isinstance(command, str):
        raise InputError("command", f"command must be a string, not {command!r}")
    cluster_id = zigbee_se.resolve_cluster(cluster)
    frame = zigbee_se.encode_frame(
        cluster_id, command, _from_json(cluster_id, command, fields),
        se_version=se_version, tsn=tsn, disable_default_response=disable_default_response,
        manufacturer_code=manufacturer_code, max_frame_size=max_frame_size or None,
    )
    return frame.hex()


def _encode_main(args: argparse.Namespace) -> int:
    if args.cluster == "-" and args.command is None:
        return _batch(sys.stdin, sys.stdout, lambda line: _encode_line(line, args))
    if args.command is None or args.fields is None:
        print("hangw se encode: CLUSTER COMMAND JSON (or '-' for batch)", file=sys.stderr)
        return 2
    try:
        fields = json.loads(args.fields)
        print(encode_one(
            args.cluster, args.command, fields, se_version=args.se_version, tsn=args.tsn,
            disable_default_response=args.disable_default_response,
            manufacturer_code=args.manufacturer_code, max_frame_size=args.max_frame_size,
        ))
    except (SECodecError, InputError, json.JSONDecodeError) as exc:
        print(f"hangw se encode: {_describe(exc)}", file=sys.stderr)
        return 1
    return 0


def _encode_line(line: str, args: argparse.Namespace) -> str:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError("line", f"not a JSON object: {exc.msg} at column {exc.colno}") from None
    if not isinstance(item, dict):
        raise InputError("line", "each line must be a JSON object")
    tsn = item.get("tsn", args.tsn)
    return encode_one(
        item.get("cluster"), item.get("command"), item.get("fields", {}),
        se_version=str(item.get("se_version", args.se_version)),
        tsn=tsn, disable_default_response=bool(item.get("disable_default_response", args.disable_default_response)),
        manufacturer_code=item.get("manufacturer_code", args.manufacturer_code),
        max_frame_size=item.get("max_frame_size", args.max_frame_size),
    )


# ------------------------------------------------------------------------------------ decode


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def decode_one(cluster: Any, hex_text: str, se_version: str | None = None) -> dict[str, Any]:
    try:
        frame = bytes.fromhex(hex_text.replace(":", "").replace(" ", ""))
    except ValueError:
        raise InputError("hex", f"{hex_text!r} is not hex") from None
    decoded = zigbee_se.decode_frame(cluster, frame, se_version=se_version)
    out: dict[str, Any] = {
        "cluster": zigbee_se.cluster_name(decoded.cluster),
        "command": decoded.command,
        "direction": str(decoded.direction),
        "tsn": decoded.tsn,
    }
    if decoded.manufacturer_code is not None:
        out["manufacturer_code"] = decoded.manufacturer_code
    if decoded.disable_default_response:
        out["disable_default_response"] = True
    out["fields"] = _jsonable(decoded.fields)
    if decoded.trailing:
        out["trailing"] = decoded.trailing.hex()
    return out


def _decode_main(args: argparse.Namespace) -> int:
    if args.cluster == "-" and args.hex is None:
        return _batch(sys.stdin, sys.stdout, lambda line: _decode_line(line, args))
    if args.hex is None:
        print("hangw se decode: CLUSTER HEX (or '-' for batch)", file=sys.stderr)
        return 2
    try:
        print(json.dumps(decode_one(args.cluster, args.hex, args.se_version), ensure_ascii=False))
    except (SECodecError, InputError) as exc:
        print(f"hangw se decode: {_describe(exc)}", file=sys.stderr)
        return 1
    return 0


def _decode_line(line: str, args: argparse.Namespace) -> str:
    parts = line.split(None, 1)
    if len(parts) != 2:
        raise InputError("line", "expected 'CLUSTER HEX'")
    return json.dumps(decode_one(parts[0], parts[1], args.se_version), ensure_ascii=False)


# ------------------------------------------------------------------------------------ batch


def _describe(exc: Exception) -> str:
    return str(exc)


def error_object(exc: Exception) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, EncodeError):
        error["field"] = exc.field
        error["limit"] = exc.limit
    elif isinstance(exc, DecodeError):
        error["offset"] = exc.offset
    elif isinstance(exc, InputError):
        error["field"] = exc.field
    return {"error": error}


def _batch(stdin: TextIO, stdout: TextIO, handle: Any) -> int:
    failed = False
    lines: Iterable[str] = stdin
    for raw in lines:
        line = raw.rstrip("\n")
        try:
            stdout.write(handle(line) + "\n")
        except (SECodecError, InputError) as exc:
            failed = True
            stdout.write(json.dumps(error_object(exc), ensure_ascii=False, default=repr) + "\n")
        stdout.flush()
    return 1 if failed else 0
