"""`hangw se encode|decode`: the SE codec from a terminal or a script (one JSON object per line)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import zigbee_se
from zigbee_se import DecodeError, EncodeError, SECodecError
from zigbee_se.attributes import DATA_TYPES, find_attribute
from zigbee_se.foundation import GLOBAL_BY_NAME
from zigbee_se.schema import Direction
from zigbee_se.types import FixedOctets


class InputError(ValueError):
    """A batch line or argument that is not even well-formed (not JSON, not hex, a key of the wrong
    type...): names the field, the value given and what was expected there."""

    def __init__(self, field: str, value: Any, expected: str, *, missing: bool = False,
                 unknown: bool = False) -> None:
        self.field, self.value, self.expected = field, value, expected
        if unknown:
            super().__init__(f"{field!r} is no key of a line: expected {expected}")
        else:
            given = "missing" if missing else f"{_as_json(value)} is invalid"
            super().__init__(f"{field}: {given}: expected {expected}")


def _as_json(value: Any) -> str:
    """A value as the JSON line spelled it (null, not None), or its repr if it is not JSON."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def register(subparsers: Any) -> None:
    se = subparsers.add_parser("se", help="encode and decode Smart Energy ZCL frames")
    sub = se.add_subparsers(dest="se_command", metavar="ACTION", required=True)

    enc = sub.add_parser(
        "encode",
        help="fields (JSON) -> whole ZCL frame (hex)",
        description="Print the whole ZCL frame (header + payload) as lowercase hex. With '-' as the "
        "only argument, read one JSON object per line from stdin "
        '({"cluster", "command", "fields"?, and optionally any option below by its snake_case name}) and '
        "write one line per input line: the frame, or an error object naming the line, field, value and "
        "what was expected. The exit status is 1 if any line failed.",
    )
    enc.add_argument("cluster", help="price, drlc, messaging, metering, time, or a cluster id; '-' for batch")
    enc.add_argument("command", nargs="?", help="snake_case command name, e.g. display_message")
    enc.add_argument("fields", nargs="?", help="JSON object of field values")
    enc.add_argument("--se-version", default=str(zigbee_se.DEFAULT_SE_VERSION), choices=["1.0", "1.1", "1.2"])
    enc.add_argument("--tsn", type=int, default=0, help="transaction sequence number (0..255)")
    enc.add_argument("--disable-default-response", action="store_true")
    enc.add_argument("--manufacturer-code", type=lambda s: int(s, 0), default=None)
    enc.add_argument(
        "--max-frame-size",
        type=int,
        default=zigbee_se.DEFAULT_MAX_FRAME_SIZE,
        help=f"single-frame budget in bytes (default {zigbee_se.DEFAULT_MAX_FRAME_SIZE}; 0 = no check)",
    )
    enc.add_argument("--direction", choices=list(DIRECTIONS), default=None,
                     help="frame control direction bit; cluster commands know theirs (a different one is "
                     "refused), the global commands default to their usual one")
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
    dec.add_argument(
        "--se-version",
        default=None,
        choices=["1.0", "1.1", "1.2"],
        help="layout where versions disagree (PublishBlockPeriod); default: by length",
    )
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
                if type_id is None and isinstance(attr, int) and not isinstance(attr, bool):
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
        raise InputError(field, value, "hex digits (spaces and colons allowed)") from None


DIRECTIONS = {str(d): d for d in Direction}


def _is_int(value: Any, lo: int, hi: int | None = None) -> bool:
    # JSON true/false arrive as bool, a subclass of int: never a number here.
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value and (hi is None or value <= hi)


# What each key of a batch line (each option of the one-frame form) must be, checked before the
# codec sees it: a line's error names the key, the value and this expectation. The codec itself
# checks what only it knows (the cluster and command exist, field values fit their types).
LINE_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "cluster": (lambda v: isinstance(v, str) or _is_int(v, 0, 0xFFFF),
                "a cluster name (price, drlc, messaging, metering, time) or a 16-bit cluster id "
                '(an integer, or a string such as "0x0703")'),
    "command": (lambda v: isinstance(v, str), "a snake_case command name (a string), e.g. display_message"),
    "fields": (lambda v: isinstance(v, dict), "a JSON object of field names to values"),
    "se_version": (lambda v: v in ("1.0", "1.1", "1.2"), 'one of the strings "1.0", "1.1", "1.2"'),
    "tsn": (lambda v: _is_int(v, 0, 0xFF), "an integer 0..255"),
    "disable_default_response": (lambda v: isinstance(v, bool), "true or false"),
    "manufacturer_code": (lambda v: v is None or _is_int(v, 0, 0xFFFF), "null or an integer 0..65535"),
    "max_frame_size": (lambda v: _is_int(v, 0), "an integer >= 0 (the single-frame budget in bytes; 0 = no check)"),
    "direction": (lambda v: v is None or (isinstance(v, str) and v in DIRECTIONS),
                  "client_to_server or server_to_client"),
}
REQUIRED_KEYS = ("cluster", "command")


def encode_item(item: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """One frame (hex) from a batch line's object, `defaults` (the command-line options) filling the
    keys the line leaves out. Every key is checked first, so nothing but a typed error leaves here."""
    unknown = sorted(set(item) - LINE_KEYS.keys())
    if unknown:
        raise InputError(unknown[0], item[unknown[0]], f"one of the keys {', '.join(LINE_KEYS)}",
                         unknown=True)
    values = {**defaults, **item}
    for key, (valid, expected) in LINE_KEYS.items():
        if key in REQUIRED_KEYS and key not in item:
            raise InputError(key, None, expected, missing=True)
        if not valid(values[key]):
            raise InputError(key, values[key], expected)
    direction = values["direction"]
    cluster_id = zigbee_se.resolve_cluster(values["cluster"])
    command = values["command"]
    frame = zigbee_se.encode_frame(
        cluster_id,
        command,
        _from_json(cluster_id, command, values["fields"]),
        se_version=values["se_version"],
        tsn=values["tsn"],
        disable_default_response=values["disable_default_response"],
        manufacturer_code=values["manufacturer_code"],
        direction=None if direction is None else DIRECTIONS[direction],
        max_frame_size=values["max_frame_size"] or None,
    )
    return frame.hex()


def _option_defaults(args: argparse.Namespace) -> dict[str, Any]:
    return {"fields": {}, "se_version": args.se_version, "tsn": args.tsn,
            "disable_default_response": args.disable_default_response,
            "manufacturer_code": args.manufacturer_code, "max_frame_size": args.max_frame_size,
            "direction": args.direction}


def _encode_main(args: argparse.Namespace) -> int:
    if args.cluster == "-" and args.command is None:
        defaults = _option_defaults(args)
        return _batch(sys.stdin, sys.stdout, lambda line: encode_item(_json_object(line), defaults))
    if args.command is None or args.fields is None:
        print("hangw se encode: CLUSTER COMMAND JSON (or '-' for batch)", file=sys.stderr)
        return 2
    try:
        fields = _json_value(args.fields, "fields")
        print(encode_item({"cluster": args.cluster, "command": args.command, "fields": fields},
                          _option_defaults(args)))
    except (SECodecError, InputError) as exc:
        print(f"hangw se encode: {_describe(exc)}", file=sys.stderr)
        return 1
    return 0


def _refuse_constant(name: str) -> Any:
    raise InputError("line", name, "JSON (NaN and Infinity are not JSON numbers)")


def _json_value(text: str, field: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(field, text, f"JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # an integer of over 4300 digits, nesting too deep
        if isinstance(exc, InputError):
            raise
        raise InputError(field, text[:40], f"JSON that Python can hold ({exc})") from None


def _json_object(line: str) -> dict[str, Any]:
    item = _json_value(line, "line")
    if not isinstance(item, dict):
        raise InputError("line", item, 'a JSON object such as {"cluster": "messaging", "command": ...}')
    return item


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
        raise InputError("hex", hex_text, "the frame as hex digits (spaces and colons allowed)") from None
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
        raise InputError("line", line, "'CLUSTER HEX'")
    return json.dumps(decode_one(parts[0], parts[1], args.se_version), ensure_ascii=False)


# ------------------------------------------------------------------------------------ batch


def _describe(exc: Exception) -> str:
    return str(exc)


def error_object(exc: Exception, line: int) -> dict[str, Any]:
    """The error line of a batch: which input line, and (for encode) field, value and expectation."""
    error: dict[str, Any] = {"type": type(exc).__name__, "line": line, "message": f"line {line}: {exc}"}
    if isinstance(exc, EncodeError):
        error.update(field=exc.field, value=_jsonable(exc.value), expected=exc.limit)
    elif isinstance(exc, DecodeError):
        error["offset"] = exc.offset
    elif isinstance(exc, InputError):
        error.update(field=exc.field, value=_jsonable(exc.value), expected=exc.expected)
    else:
        error["message"] = f"line {line}: unexpected {type(exc).__name__}: {exc} (a bug in hangw: please report it)"
    return {"error": error}


def _batch(stdin: TextIO, stdout: TextIO, handle: Callable[[str], str]) -> int:
    failed = False
    lines: Iterable[str] = stdin
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        try:
            answer = handle(line)
        except Exception as exc:  # every line gets its answer: not even a codec bug stops the batch
            failed = True
            answer = json.dumps(error_object(exc, number), ensure_ascii=False, default=repr)
        stdout.write(answer + "\n")
        stdout.flush()
    return 1 if failed else 0
