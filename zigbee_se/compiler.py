"""Compile a CommandDef into an encoder per SE version and one decoder.

The definitions stay declarative (commands/*.py); this module turns each into straight-line Python
source once, at import, the way dataclasses and attrs generate __init__. A call then costs a dict
lookup and a range check per field and one struct.pack/unpack per run of fixed-size fields —
which is what keeps the codec near a hand-written struct.pack (benchmarks/codec.py).
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping
from typing import Any

from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.schema import REQUIRED, CommandDef, Field, Item, NibblePair
from zigbee_se.types import CharString, FixedOctets, IntType
from zigbee_se.versions import SEVersion

Encoder = Callable[[Mapping[str, Any]], bytes]
FrameEncoder = Callable[[Mapping[str, Any], int, int], bytes]
"""(fields, frame control, tsn) -> the whole frame, header included."""
Decoder = Callable[[bytes, int], tuple[dict[str, Any], int]]

_STRUCT_CODES = {
    (1, False): ("B",),
    (2, False): ("H",),
    (4, False): ("I",),
    (1, True): ("b",),
    (2, True): ("h",),
    (4, True): ("i",),
    (3, False): ("H", "B"),
    (3, True): ("H", "B"),
    (6, False): ("I", "H"),
}


def _codes(item: Field) -> tuple[str, ...]:
    t = item.type
    if isinstance(t, FixedOctets):
        return (f"{t.size}s",)
    if isinstance(t, IntType):
        return _STRUCT_CODES[(t.size, t.signed)]
    raise TypeError(t)


def _item_size(item: Item) -> int:
    if isinstance(item, NibblePair):
        return 1
    t = item.type
    return t.size if not isinstance(t, CharString) else -1


# ---------------------------------------------------------------------------------------------
# helpers the generated code calls on its error paths only


def _missing(field: Field) -> EncodeError:
    return EncodeError(field.name, None, f"required ({field.limit_text()})")


def _bad(field: Field, value: Any) -> EncodeError:
    return EncodeError(field.name, value, field.limit_text())


def _as_int(field: Field, value: Any) -> int:
    # Whatever struct would pack as an integer (int, IntEnum, numpy integers; bool as 0/1, as
    # Python itself treats it) — the fast path relies on struct, and both paths must agree.
    try:
        return operator.index(value)
    except TypeError:
        raise EncodeError(field.name, value, f"an integer: {field.limit_text()}") from None


def _as_bytes(field: Field, value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise EncodeError(field.name, value, f"bytes: {field.limit_text()}")


def _utf8(field: Field, value: Any) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(field.name, value, f"a string: {field.limit_text()}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(field.name, value, f"encodable as UTF-8 ({exc.reason})") from None


def _too_long(field: Field, value: Any, size: int) -> EncodeError:
    assert isinstance(field.type, CharString)
    return EncodeError(
        field.name, value, f"at most {field.type.max_length} bytes of UTF-8 (this is {size} bytes)"
    )


def _short(offset: int, end: int, layout: tuple[tuple[str, int], ...]) -> DecodeError:
    at = offset
    for name, size in layout:
        if at + size > end:
            return DecodeError(at, f"{name}: needs {size} bytes, {max(end - at, 0)} remain")
        at += size
    return DecodeError(offset, "frame ends early")  # pragma: no cover - layout covers the run


# ---------------------------------------------------------------------------------------------
# encoder generation


class _Src:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}

    def add(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

    def const(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{len(self.ns)}"
        self.ns[name] = value
        return name


def _gen_int_check(src: _Src, field: Field, var: str, fref: str) -> None:
    lo, hi = field.bounds()
    cond = f"not ({lo} <= {var} <= {hi})"
    if field.mask is not None:
        cond += f" or {var} & {~field.mask & ((1 << (8 * _int_size(field))) - 1)}"
    if field.choices is not None:
        cond += f" or {var} not in {src.const('CH', field.choices)}"
    if field.sentinel is not None:
        cond = f"{var} != {field.sentinel} and ({cond})"
    src.add(f"if {var}.__class__ is not int: {var} = _as_int({fref}, {var})")
    src.add(f"if {cond}: raise _bad({fref}, {var})")


def _int_size(field: Field) -> int:
    assert isinstance(field.type, IntType)
    return field.type.size


def _gen_fetch(src: _Src, field: Field, var: str, fref: str) -> None:
    omitted = field.omitted_value
    if omitted is REQUIRED:
        src.add("try:")
        src.add(f"{var} = f[{field.name!r}]", 2)
        src.add("except KeyError:")
        src.add(f"raise _missing({fref}) from None", 2)
    else:
        src.add(f"{var} = f.get({field.name!r}, {src.const('D', omitted)})")


def compile_encoder(cmd: CommandDef, version: SEVersion) -> Encoder:
    """The precise encoder of a payload: checks field by field and raises the EncodeError that
    names the field, the value and the limit. The frame encoder falls back to it."""
    items = cmd.fields_for(version)
    src = _Src()
    src.ns.update(
        _as_int=_as_int, _as_bytes=_as_bytes, _utf8=_utf8, _bad=_bad, _missing=_missing,
        _too_long=_too_long, _extra=_extra_checker(cmd, version),
    )
    known = frozenset(n for it in items for n in _names(it))
    src.ns["_KNOWN"] = known
    src.add("if not _KNOWN.issuperset(f): _extra(f)")

    # wire plan: list of ("struct", fmt, args) | ("bytes", var)
    fmt = "<"
    args: list[str] = []
    parts: list[str] = []

    def flush() -> None:
        nonlocal fmt, args
        if args:
            packer = src.const("P", struct.Struct(fmt).pack)
            parts.append(f"{packer}({', '.join(args)})")
        fmt, args = "<", []

    for i, item in enumerate(items):
        if isinstance(item, NibblePair):
            hv, lv = f"h{i}", f"l{i}"
            for sub, var in ((item.high, hv), (item.low, lv)):
                fref = src.const("F", sub)
                _gen_fetch(src, sub, var, fref)
                _gen_int_check(src, sub, var, fref)
            fmt += "B"
            args.append(f"{hv} << 4 | {lv}")
            continue
        field = item
        var = f"v{i}"
        fref = src.const("F", field)
        _gen_fetch(src, field, var, fref)
        t = field.type
        if isinstance(t, IntType):
            _gen_int_check(src, field, var, fref)
            if t.size == 3:
                src.add(f"{var} &= 0xFFFFFF")
                args += [f"{var} & 0xFFFF", f"{var} >> 16"]
            elif t.size == 6:
                args += [f"{var} & 0xFFFFFFFF", f"{var} >> 32"]
            else:
                args.append(var)
            fmt += "".join(_codes(field))
        elif isinstance(t, FixedOctets) and field.optional and item is items[-1]:
            # A trailing optional octet field may be left off the wire with None (Exegin's
            # ReportEventStatus has no signature bytes at all).
            src.add(f"if {var} is None: {var} = b''")
            src.add("else:")
            src.add(f"if {var}.__class__ is not bytes: {var} = _as_bytes({fref}, {var})", 2)
            src.add(f"if len({var}) != {t.size}: raise _bad({fref}, {var})", 2)
            flush()
            parts.append(var)
        elif isinstance(t, FixedOctets):
            src.add(f"if {var}.__class__ is not bytes: {var} = _as_bytes({fref}, {var})")
            src.add(f"if len({var}) != {t.size}: raise _bad({fref}, {var})")
            fmt += f"{t.size}s"
            args.append(var)
        else:  # CharString: a length byte, then the bytes
            bvar, nvar = f"b{i}", f"n{i}"
            src.add(f"if {var} is None: {bvar}, {nvar} = b'', 0xFF")
            src.add("else:")
            src.add(f"{bvar} = {var}.encode('utf-8') if {var}.__class__ is str and "
                    f"{var}.isascii() else _utf8({fref}, {var})", 2)
            src.add(f"{nvar} = len({bvar})", 2)
            src.add(f"if {nvar} > {t.max_length}: raise _too_long({fref}, {var}, {nvar})", 2)
            fmt += "B"
            args.append(nvar)
            flush()
            parts.append(bvar)
    flush()
    body = " + ".join(parts) if parts else "b''"
    src.add(f"return {body}")
    code = "def encode(f):\n" + "\n".join(src.lines) + "\n"
    exec(compile(code, f"<zigbee_se encoder {cmd.name} SE {version}>", "exec"), src.ns)
    encoder: Encoder = src.ns["encode"]
    encoder.__doc__ = f"Encode the {cmd.name} payload for SE {version}."
    return encoder


def _fast_check(field: Field, var: str, src: _Src) -> str | None:
    """The condition a value must meet beyond what struct.pack enforces for its wire type."""
    t = field.type
    assert isinstance(t, IntType)
    lo, hi = field.bounds()
    mask = field.mask
    if mask is not None and lo >= 0 and mask & (mask + 1) == 0:
        hi, mask = min(hi, mask), None  # a mask of low bits is just an upper bound
    if field.sentinel is not None and (lo, hi) == (t.min, t.max - 1) and field.sentinel == t.max:
        lo, hi = t.min, t.max  # range plus sentinel cover the whole type: struct checks it
    if field.sentinel is not None and (lo, hi) == (t.min + 1, t.max) and field.sentinel == t.min:
        lo, hi = t.min, t.max
    conds = []
    if (lo, hi) != (t.min, t.max) or t.size == 3 or (t.size == 6 and t.signed):
        conds.append(f"{lo} <= {var} <= {hi}")
    if mask is not None:
        conds.append(f"not {var} & {~mask & ((1 << (8 * t.size)) - 1)}")
    if field.choices is not None:
        conds.append(f"{var} in {src.const('CH', field.choices)}")
    if not conds:
        return None
    good = " and ".join(conds)
    if field.sentinel is not None:
        good = f"({var} == {field.sentinel} or ({good}))"
    return good


def compile_frame_encoder(cmd: CommandDef, version: SEVersion, precise: Encoder) -> FrameEncoder:
    """The fast encoder of a whole frame: one dict merge for the defaults, one itemgetter, the
    checks struct cannot do, one struct.pack per run. Anything unexpected — a missing or unknown
    field, a wrong type, a value out of range — goes to `precise`, which either raises the typed
    error or encodes what is valid after all (a later version's field at its "not used" value)."""
    items = cmd.fields_for(version)
    src = _Src()
    src.ns.update(_precise=precise, _slow=_slow_frame, _CMD=cmd.command_id)
    names = [n for it in items for n in _names(it)]
    defaults = {}
    for item in items:
        for sub in (item.high, item.low) if isinstance(item, NibblePair) else (item,):
            if sub.omitted_value is not REQUIRED:
                defaults[sub.name] = sub.omitted_value
    src.ns["_DEF"] = defaults
    checks: list[str] = []
    fmt = "<BBB"
    args = ["fc", "tsn", str(cmd.command_id)]
    parts: list[str] = []
    pre: list[str] = []

    def flush() -> None:
        nonlocal fmt, args
        if args:
            parts.append(f"{src.const('P', struct.Struct(fmt).pack)}({', '.join(args)})")
        fmt, args = "<", []

    var_of = {name: f"x{i}" for i, name in enumerate(names)}
    for item in items:
        if isinstance(item, NibblePair):
            hv, lv = var_of[item.high.name], var_of[item.low.name]
            for sub, var in ((item.high, hv), (item.low, lv)):
                check = _fast_check(sub, var, src)
                if check:
                    checks.append(check)
            fmt += "B"
            args.append(f"{hv} << 4 | {lv}")
            continue
        var = var_of[item.name]
        t = item.type
        if isinstance(t, IntType):
            check = _fast_check(item, var, src)
            if check:
                checks.append(check)
            fmt += "".join(_codes(item))
            if t.size == 3:
                args += [f"{var} & 0xFFFF", f"({var} & 0xFFFFFF) >> 16"]
            elif t.size == 6:
                args += [f"{var} & 0xFFFFFFFF", f"{var} >> 32"]
            else:
                args.append(var)
        elif isinstance(t, FixedOctets):
            checks.append(f"len({var}) == {t.size}")
            fmt += f"{t.size}s"
            args.append(var)
        else:
            pre.append(f"b{var} = {var}.encode('utf-8')")
            pre.append(f"n{var} = len(b{var})")
            checks.append(f"n{var} <= {t.max_length}")
            fmt += "B"
            args.append(f"n{var}")
            flush()
            parts.append(f"b{var}")
    flush()
    body = " + ".join(parts)
    lines = ["def encode(f, fc, tsn):", "    try:"]
    if names:
        # all fields given (the usual case for a generated request): no merge needed
        lines.append(f"        g = f if len(f) == {len(names)} or not _DEF else {{**_DEF, **f}}")
        lines.append(f"        if len(g) == {len(names)}:")
        if len(names) == 1:
            lines.append(f"            {var_of[names[0]]} = g[{names[0]!r}]")
        else:
            src.ns["_GET"] = operator.itemgetter(*names)
            lines.append(f"            {', '.join(var_of[n] for n in names)} = _GET(g)")
        for line in pre:
            lines.append(f"            {line}")
        if checks:
            lines.append(f"            if {' and '.join(checks)}:")
            lines.append(f"                return {body}")
        else:
            lines.append(f"            return {body}")
    else:
        lines.append("        if not f:")
        lines.append(f"            return {body}")
    lines.append("    except Exception:  # every failure is re-examined by the precise encoder")
    lines.append("        pass")
    lines.append("    return _slow(f, fc, tsn, _CMD, _precise)")
    code = "\n".join(lines) + "\n"
    exec(compile(code, f"<zigbee_se frame encoder {cmd.name} SE {version}>", "exec"), src.ns)
    encoder: FrameEncoder = src.ns["encode"]
    return encoder


def _slow_frame(f: Any, fc: int, tsn: Any, command_id: int, precise: Encoder) -> bytes:
    if not isinstance(f, Mapping):
        raise EncodeError("fields", f, "an object of field names to values")
    try:
        tsn = operator.index(tsn)
    except TypeError:
        raise EncodeError("tsn", tsn, "uint8 in 0..255") from None
    if not 0 <= tsn <= 0xFF:
        raise EncodeError("tsn", tsn, "uint8 in 0..255")
    return bytes((fc, tsn, command_id)) + precise(f)


def _names(item: Item) -> tuple[str, ...]:
    if isinstance(item, NibblePair):
        return (item.high.name, item.low.name)
    return (item.name,)


def _extra_checker(cmd: CommandDef, version: SEVersion) -> Callable[[Mapping[str, Any]], None]:
    """Slow path when a caller passes names beyond the target version's fields."""
    later: dict[str, Field] = {}
    for item in cmd.fields:
        if item.since > version:
            subs = (item.high, item.low) if isinstance(item, NibblePair) else (item,)
            for sub in subs:
                later[sub.name] = sub
    since = {n: it.since for it in cmd.fields for n in _names(it)}

    def check(fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if name in later:
                # A later version's field at its "not used" value changes nothing: drop it quietly,
                # so one field set can be encoded for meters of every version. A real value would be
                # lost, which a caller must hear about.
                if value != later[name].omitted_value:
                    raise EncodeError(
                        name, value,
                        f"defined from SE {since[name]}; the target is SE {version} "
                        f"(leave it out or at {later[name].omitted_value!r})",
                    )
            elif name not in since:
                raise EncodeError(
                    name, value, f"not a field of {cmd.name} (fields: {', '.join(cmd.field_names)})"
                )

    return check


# ---------------------------------------------------------------------------------------------
# decoder generation


def _gen_unpack_run(src: _Src, run: list[tuple[Field | NibblePair, str]], indent: int) -> list[str]:
    """Unpack a run of fixed-size items at `o`; returns statements' result var names per item."""
    fmt = "<"
    targets: list[str] = []
    post: list[str] = []
    for item, var in run:
        if isinstance(item, NibblePair):
            fmt += "B"
            targets.append(f"{var}p")
            post.append(f"{var}h, {var}l = {var}p >> 4, {var}p & 15")
            continue
        t = item.type
        if isinstance(t, IntType) and t.size in (3, 6):
            fmt += "".join(_codes(item))
            targets += [f"{var}a", f"{var}b"]
            shift = 16 if t.size == 3 else 32
            post.append(f"{var} = {var}a | {var}b << {shift}")
            if t.signed:
                post.append(f"if {var} & 0x800000: {var} -= 0x1000000")
        else:
            fmt += "".join(_codes(item))
            targets.append(var)
    unpacker = src.const("U", struct.Struct(fmt).unpack_from)
    size = struct.calcsize(fmt)
    src.add(f"{', '.join(targets)}, = {unpacker}(d, o)", indent)
    for line in post:
        src.add(line, indent)
    src.add(f"o += {size}", indent)
    return targets


def _layout(run: list[tuple[Item, str]]) -> tuple[tuple[str, int], ...]:
    return tuple((item.name, _item_size(item)) for item, _ in run)


def _entries(item: Item, var: str) -> list[str]:
    if isinstance(item, NibblePair):
        return [f"{item.high.name!r}: {var}h", f"{item.low.name!r}: {var}l"]
    return [f"{item.name!r}: {var}"]


def _gen_string(src: _Src, field: Field, var: str, indent: int) -> None:
    src.add(f"if {var}n == 0xFF: {var} = None", indent)
    src.add("else:", indent)
    src.add(f"e = o + {var}n", indent + 1)
    src.add(
        f"if e > n: raise DecodeError(o - 1, '{field.name}: length ' + str({var}n) + "
        f"' but only ' + str(n - o) + ' bytes remain')",
        indent + 1,
    )
    src.add("try:", indent + 1)
    src.add(f"{var} = d[o:e].decode()", indent + 2)
    src.add("except UnicodeDecodeError as x:", indent + 1)
    src.add(f"raise DecodeError(o + x.start, '{field.name}: not valid UTF-8') from None", indent + 2)
    src.add("o = e", indent + 1)


def compile_decoder(cmd: CommandDef) -> Decoder:
    src = _Src()
    src.ns.update(DecodeError=DecodeError, _short=_short)
    src.add("n = len(d)")
    mandatory = [(it, f"v{i}") for i, it in enumerate(cmd.fields) if not it.optional]
    optional = [(it, f"v{i}") for i, it in enumerate(cmd.fields) if it.optional]

    # Mandatory part: runs of fixed-size items, each string's length byte closing a run.
    run: list[tuple[Item, str]] = []

    def emit_run(indent: int) -> None:
        if not run:
            return
        size = sum(_item_size(it) for it, _ in run)
        layout = src.const("L", _layout(run))
        src.add(f"if n - o < {size}: raise _short(o, n, {layout})", indent)
        _gen_unpack_run(src, run, indent)
        run.clear()

    for item, var in mandatory:
        if isinstance(item, Field) and isinstance(item.type, CharString):
            run.append((Field(item.name + " length", _U8), var + "n"))
            emit_run(1)
            _gen_string(src, item, var, 1)
        else:
            run.append((item, var))
    emit_run(1)
    entries = [e for it, var in mandatory for e in _entries(it, var)]
    if not optional:
        src.add(f"return {{{', '.join(entries)}}}, o")
    else:
        # Fast paths: the optional fields of each SE version are there whole (the usual case: a
        # sender of that version), newest version first; one unpack each.
        fixed_prefix: list[tuple[Item, str]] = []
        for item, var in optional:
            if _item_size(item) <= 0:
                break
            fixed_prefix.append((item, var))
        cuts = [i + 1 for i in range(len(fixed_prefix))
                if i + 1 == len(fixed_prefix) or fixed_prefix[i + 1][0].since != fixed_prefix[i][0].since]
        whole_tail = len(fixed_prefix) == len(optional)
        for cut in reversed(cuts):
            group = fixed_prefix[:cut]
            total = sum(_item_size(it) for it, _ in group)
            if cut == len(fixed_prefix) and whole_tail:
                src.add(f"if n - o >= {total}:")
            else:  # only this version's fields: what follows is left to the stepwise path below
                src.add(f"if n - o == {total}:")
            _gen_unpack_run(src, list(group), 2)
            every = entries + [e for it, var in group for e in _entries(it, var)]
            src.add(f"return {{{', '.join(every)}}}, o", 2)
        src.add(f"r = {{{', '.join(entries)}}}")
        # Stepwise: the payload may stop after any optional field. Bytes that cannot form the next
        # field whole are left as the unknown trailing bytes the caller sees, not an error.
        for item, var in optional:
            if isinstance(item, Field) and isinstance(item.type, CharString):
                # An optional text that is cut short or not UTF-8 stays raw, as trailing bytes.
                src.add("if o == n or o + 1 + d[o] > n and d[o] != 0xFF: return r, o")
                src.add(f"if d[o] == 0xFF: {var} = None; o += 1")
                src.add("else:")
                src.add("try:", 2)
                src.add(f"{var} = d[o + 1:o + 1 + d[o]].decode()", 3)
                src.add("except UnicodeDecodeError:", 2)
                src.add("return r, o", 3)
                src.add("o += 1 + d[o]", 2)
            else:
                size = _item_size(item)
                src.add(f"if n - o < {size}: return r, o")
                if isinstance(item, Field) and isinstance(item.type, IntType) and size == 1 and not item.type.signed:
                    src.add(f"{var} = d[o]; o += 1")
                else:
                    _gen_unpack_run(src, [(item, var)], 1)
            for entry in _entries(item, var):
                key, value = entry.split(": ", 1)
                src.add(f"r[{key}] = {value}")
        src.add("return r, o")
    code = "def decode(d, o):\n" + "\n".join(src.lines) + "\n"
    exec(compile(code, f"<zigbee_se decoder {cmd.name}>", "exec"), src.ns)
    decoder: Decoder = src.ns["decode"]
    return decoder


_U8 = IntType("uint8", 1, False, 0x20)
