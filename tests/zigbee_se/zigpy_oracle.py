"""zigpy's foundation types (zigpy.zcl.foundation) as a second implementation of the 23 ZCL global
commands: random valid payloads in our field form, the same payloads as zigpy objects, zigpy's
objects back in our field form, and both directions of one payload compared value by value.

Used by test_zigpy_differential.py, which holds the list of what zigpy gets wrong."""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import zigpy.types as t
from zigpy.zcl import foundation as zf
from zigpy.zcl.clusters.smartenergy import Metering

import zigbee_se
from zigbee_se import DecodeError, Direction, EncodeError, find_attribute
from zigbee_se.attributes import ANALOG_TYPES, COLLECTION_TYPES, DATA_TYPES, FLOAT_CODES
from zigbee_se.foundation import GLOBAL_BY_ID, GLOBAL_COMMANDS

CLUSTER = 0x0702
"""Metering: both our named attributes and zigpy's attribute definitions apply."""
OURS_TO_ZIGPY, ZIGPY_TO_OURS = "ours->zigpy", "zigpy->ours"

VALUE_TYPES = tuple(sorted(tid for tid in DATA_TYPES if tid not in (0x00, 0xFF)))
"""Types both sides (de)serialize values of: ours minus no data/unknown (which carry no value);
zigpy's arrays, structures, sets and bags are not ours."""
_EDGY_TYPES = (0x38, 0x39, 0x3A, 0x41, 0x42, 0x43, 0x44)
DRAWN_TYPES = VALUE_TYPES + _EDGY_TYPES * 3
"""The draw for a random value: floats and strings, where implementations differ, more often."""
DECLARED_TYPES = VALUE_TYPES + tuple(COLLECTION_TYPES)
"""Types discovery and reporting configuration name by id only."""
ZIGPY_METERING = {int(a.id): a for a in Metering.AttributeDefs}
KNOWN_ATTRIBUTES = tuple(sorted(i for i, a in ZIGPY_METERING.items() if a.zcl_type in VALUE_TYPES))
FORMATTING_AND_DEVICE_TYPE = (0x0303, 0x0304, 0x0305, 0x0306)
STATUSES = tuple(sorted(int(s) for s in zf.Status if s != zf.Status.SUCCESS))
_ASCII = "abcdefXYZ0189 -_."
_WIDE = "éß€ж中😀"


class ZigpyCannotWrite(Exception):
    """zigpy has no way to say this value (e.g. an octet string's non-value)."""


# ------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Generator:
    rng: random.Random

    def attribute(self) -> tuple[int, int | None]:
        """(attribute id, its data type when the codec knows the attribute)."""
        if self.rng.random() < 0.3:
            attr_id = self.rng.choice(KNOWN_ATTRIBUTES + FORMATTING_AND_DEVICE_TYPE * 4)
            known = find_attribute(CLUSTER, attr_id)
            assert known is not None
            return attr_id, known.data_type
        while True:
            attr_id = self.rng.randrange(0x10000)
            if find_attribute(CLUSTER, attr_id) is None:
                return attr_id, None

    def typed_attribute(self, types: tuple[int, ...] = DRAWN_TYPES) -> tuple[int, int]:
        attr_id, known = self.attribute()
        return attr_id, known if known is not None else self.rng.choice(types)

    def value(self, type_id: int) -> Any:
        _name, size, kind = DATA_TYPES[type_id]
        rng = self.rng
        if kind == "bool":
            return rng.choice((0, 1, 0xFF))  # 0xff: the Boolean's non-value
        if kind in ("uint", "int"):
            top = (1 << (8 * size)) - 1
            edges = (0, top, top >> 1, 1 << (8 * size - 1))  # 0, all ones (-1), the signed max and min
            raw = rng.choice((*edges, rng.randint(0, top), rng.randint(0, top)))
            return raw - (1 << 8 * size) if kind == "int" and raw >> (8 * size - 1) else raw
        if kind == "float":
            return self._float(size)
        if kind == "octets":
            if size > 0:
                return rng.randbytes(size)
            return None if rng.random() < 0.08 else rng.randbytes(rng.randint(0, 12))
        if rng.random() < 0.08:
            return None  # the string's non-value
        alphabet = _ASCII + _WIDE if rng.random() < 0.2 else _ASCII
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        return text[:3] + "\x00" + text[3:] if rng.random() < 0.1 else text

    def _float(self, size: int) -> float:
        """Any bit pattern, the exponent field biased to the edges (zero, subnormal, smallest
        normals, largest, infinity/NaN) where conversions go wrong."""
        exp_bits, frac_bits = {2: (5, 10), 4: (8, 23), 8: (11, 52)}[size]
        top = (1 << exp_bits) - 1
        middle = self.rng.randint(0, top)
        exponent = self.rng.choice((0, 0, 1, 1, 2, top - 1, top, middle, middle, middle))
        fraction = self.rng.getrandbits(frac_bits)
        bits = self.rng.getrandbits(1) << (exp_bits + frac_bits) | exponent << frac_bits | fraction
        value: float = struct.unpack(FLOAT_CODES[size], bits.to_bytes(size, "little"))[0]
        return value

    def uint(self, size: int) -> int:
        top = (1 << (8 * size)) - 1
        return self.rng.choice((0, top, self.rng.randint(0, top)))

    def count(self, most: int = 4) -> int:
        return self.rng.randint(0, most)

    def status(self) -> int:
        return self.rng.choice(STATUSES)


def ours_from_zigpy(type_id: int, value: Any) -> Any:
    """A value zigpy decoded, as our decoder gives it."""
    _name, _size, kind = DATA_TYPES[type_id]
    if kind == "float":
        number = float(value)
        return None if math.isnan(number) else number
    if kind == "string":
        return None if value.invalid else str(value)
    if kind == "octets":
        return bytes(value)
    if isinstance(value, list):  # data8..data64: a list of bytes
        return int.from_bytes(bytes(value), "little")
    if isinstance(value, t.Struct):  # time of day, date: four uint8 fields
        return int.from_bytes(value.serialize(), "little")
    return int(value)


def zigpy_from_ours(type_id: int, value: Any) -> Any:
    """Our value as the zigpy object of that ZCL type."""
    py = zf.DataType.from_type_id(zf.DataTypeId(type_id)).python_type
    _name, size, kind = DATA_TYPES[type_id]
    if kind == "string":
        return py("", invalid=True) if value is None else py(value)
    if kind == "octets":
        if value is None:
            raise ZigpyCannotWrite(f"the non-value of {py.__name__}")
        return py(list(value)) if size > 0 else py(value)
    if kind == "float":
        return py(value)
    if issubclass(py, list):
        return py(list(value.to_bytes(size, "little")))
    if issubclass(py, t.Struct):
        return py.deserialize(value.to_bytes(size, "little"))[0]
    return py(value)


def zigpy_type(attr_id: int, type_id: int) -> int:
    """The type zigpy itself puts on the wire for this attribute (its zcl_type) when it knows the
    attribute, as its Cluster.write_attributes and configure_reporting do."""
    known = ZIGPY_METERING.get(attr_id)
    return int(known.zcl_type) if known is not None else type_id


def _type_value(attr_id: int, type_id: int, value: Any) -> zf.TypeValue:
    wire = zigpy_type(attr_id, type_id)
    return zf.TypeValue(type=t.uint8_t(wire), value=zigpy_from_ours(wire, value))


# ------------------------------------------------------------------------------------- payloads


def _value_record(g: Generator) -> dict[str, Any]:
    attr_id, type_id = g.typed_attribute()
    return {"attribute_id": attr_id, "data_type": type_id, "value": g.value(type_id)}


def _configuration(g: Generator, *, with_status: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"status": g.status() if g.rng.random() < 0.3 else 0} if with_status else {}
    direction = g.rng.choice((0, 0, 1))
    record["direction"] = direction
    if direction == 1:
        record["attribute_id"] = g.uint(2)
        if record.get("status", 0) == 0:
            record["timeout"] = g.uint(2)
        return record
    attr_id, type_id = g.typed_attribute(DECLARED_TYPES)
    record["attribute_id"] = attr_id
    if record.get("status", 0) == 0:
        record.update(data_type=type_id, min_interval=g.uint(2), max_interval=g.uint(2))
        if type_id in ANALOG_TYPES:
            record["reportable_change"] = g.value(type_id)
    return record


def _failures(g: Generator, record: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A response's records as a device has them: what failed, often with what succeeded among
    them (both encoders must leave those out), or one SUCCESS record when all succeeded."""
    if g.rng.random() < 0.3:
        return {"records": [{"status": 0}]}
    records = [{"status": g.status(), **record()} for _ in range(g.rng.randint(1, 4))]
    for _ in range(g.rng.choice((0, 0, 1, 3))):
        records.insert(g.rng.randint(0, len(records)), {"status": 0, **record()})
    return {"records": records}


FAILURES_ONLY = (0x04, 0x07, 0x10)
"""Responses that list only the failed records, or one SUCCESS status when all succeeded (ZCL
07-5123 §2.5.5, §2.5.8, §2.5.17)."""


def expected(p: Payload) -> dict[str, Any]:
    """What a decoder must give back for the payload."""
    fields = canonical(p.fields)
    if p.command_id in FAILURES_ONLY:
        failed = [r for r in fields["records"] if r["status"] != 0]
        fields["records"] = failed or [{"status": 0}]
    return fields


def _selector(g: Generator, *, write: bool) -> dict[str, Any]:
    indexes = [g.uint(2) for _ in range(g.rng.choice((0, 1, 2, g.rng.randint(0, 15))))]
    return {"operation": g.rng.choice((0, 1, 2)), "indexes": indexes} if write else {"indexes": indexes}


def _structured_write(g: Generator) -> dict[str, Any]:
    selector = _selector(g, write=True)
    if selector == {"operation": 0, "indexes": []}:  # the whole attribute: its own type
        attr_id, type_id = g.typed_attribute()
    else:  # an element: any type, named by the caller
        attr_id, type_id = g.uint(2), g.rng.choice(DRAWN_TYPES)
    return {"attribute_id": attr_id, **selector, "data_type": type_id, "value": g.value(type_id)}


def _discovered(g: Generator, *, extended: bool) -> dict[str, Any]:
    attr_id, type_id = g.typed_attribute(DECLARED_TYPES)
    record = {"attribute_id": attr_id, "data_type": type_id}
    return {**record, "access_control": g.rng.randint(0, 7)} if extended else record


def _records(g: Generator, record: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return {"records": [record() for _ in range(g.count())]}


PAYLOADS: dict[int, Callable[[Generator], dict[str, Any]]] = {
    0x00: lambda g: {"attribute_ids": [g.uint(2) for _ in range(g.count(6))]},
    0x01: lambda g: _records(g, lambda: (
        {"attribute_id": g.uint(2), "status": g.status()} if g.rng.random() < 0.25
        else {"status": 0, **_value_record(g)})),
    0x02: lambda g: _records(g, lambda: _value_record(g)),
    0x03: lambda g: _records(g, lambda: _value_record(g)),
    0x04: lambda g: _failures(g, lambda: {"attribute_id": g.uint(2)}),
    0x05: lambda g: _records(g, lambda: _value_record(g)),
    0x06: lambda g: _records(g, lambda: _configuration(g, with_status=False)),
    0x07: lambda g: _failures(g, lambda: {"direction": g.rng.randint(0, 1), "attribute_id": g.uint(2)}),
    0x08: lambda g: _records(g, lambda: {"direction": g.rng.randint(0, 1), "attribute_id": g.uint(2)}),
    0x09: lambda g: _records(g, lambda: _configuration(g, with_status=True)),
    0x0A: lambda g: _records(g, lambda: _value_record(g)),
    0x0B: lambda g: {"command_id": g.uint(1), "status": g.rng.choice((0, *STATUSES))},
    0x0C: lambda g: {"start_attribute_id": g.uint(2), "max_attribute_ids": g.uint(1)},
    0x0D: lambda g: {"discovery_complete": g.rng.random() < 0.5,
                     **_records(g, lambda: _discovered(g, extended=False))},
    0x0E: lambda g: _records(g, lambda: {"attribute_id": g.uint(2), **_selector(g, write=False)}),
    0x0F: lambda g: _records(g, lambda: _structured_write(g)),
    0x10: lambda g: _failures(g, lambda: {"attribute_id": g.uint(2), **_selector(g, write=True)}),
    0x11: lambda g: {"start_command_id": g.uint(1), "max_command_ids": g.uint(1)},
    0x12: lambda g: {"discovery_complete": g.rng.random() < 0.5, "command_ids": [g.uint(1) for _ in range(g.count(8))]},
    0x13: lambda g: {"start_command_id": g.uint(1), "max_command_ids": g.uint(1)},
    0x14: lambda g: {"discovery_complete": g.rng.random() < 0.5, "command_ids": [g.uint(1) for _ in range(g.count(8))]},
    0x15: lambda g: {"start_attribute_id": g.uint(2), "max_attribute_ids": g.uint(1)},
    0x16: lambda g: {"discovery_complete": g.rng.random() < 0.5,
                     **_records(g, lambda: _discovered(g, extended=True))},
}


def typed_values(fields: dict[str, Any]) -> Iterator[tuple[str, int, Any]]:
    """(path, data type id, value) of every typed value in a payload."""
    for i, record in enumerate(fields.get("records", [])):
        type_id = record.get("data_type")
        for key in ("value", "reportable_change"):
            if key in record and type_id in DATA_TYPES:
                yield f"records[{i}].{key}", type_id, record[key]


# ------------------------------------------------------------------------------- to and from zigpy


def _selector_obj(record: dict[str, Any]) -> zf.Selector:
    indexes = record["indexes"]
    return zf.Selector(depth=len(indexes), op=zf.SelectorOperation(record.get("operation", 0)),
                       indexes=[t.uint16_t(i) for i in indexes])


def _config_obj(record: dict[str, Any]) -> zf.AttributeReportingConfig:
    config = zf.AttributeReportingConfig()
    config.direction = zf.ReportingDirection(record["direction"])
    config.attrid = t.uint16_t(record["attribute_id"])
    if "timeout" in record:
        config.timeout = record["timeout"]
    if "data_type" in record:
        config.datatype = zigpy_type(record["attribute_id"], record["data_type"])
        config.min_interval, config.max_interval = record["min_interval"], record["max_interval"]
        # zigpy's own configure_reporting always sets a change; serialize() writes it for analog types
        change = record.get("reportable_change")
        config.reportable_change = 0 if change is None else zigpy_from_ours(config.datatype, change)
    return config


def to_zigpy(command_id: int, fields: dict[str, Any]) -> Any:
    """Our payload as zigpy's command schema object."""
    schema = zf.GENERAL_COMMANDS[zf.GeneralCommand(command_id)].schema
    records = fields.get("records", [])
    if command_id == 0x00:
        return schema(attribute_ids=fields["attribute_ids"])
    if command_id == 0x01:
        return schema(status_records=[
            zf.ReadAttributeRecord(r["attribute_id"], r["status"],
                                   _type_value(r["attribute_id"], r["data_type"], r["value"]) if r["status"] == 0
                                   else None) for r in records])
    if command_id in (0x02, 0x03, 0x05, 0x0A):
        attributes = [zf.Attribute(r["attribute_id"], _type_value(r["attribute_id"], r["data_type"], r["value"]))
                      for r in records]
        return schema(attribute_reports=attributes) if command_id == 0x0A else schema(attributes=attributes)
    if command_id == 0x04:
        return schema(status_records=zf.WriteAttributesResponse(
            zf.WriteAttributesStatusRecord(status=r["status"], attrid=r.get("attribute_id")) for r in records))
    if command_id == 0x06:
        return schema(config_records=[_config_obj(r) for r in records])
    if command_id == 0x07:
        return schema(status_records=zf.ConfigureReportingResponse(
            zf.ConfigureReportingResponseRecord(status=r["status"], direction=r.get("direction"),
                                                attrid=r.get("attribute_id")) for r in records))
    if command_id == 0x08:
        return schema(attribute_records=[zf.ReadReportingConfigRecord(r["direction"], r["attribute_id"])
                                         for r in records])
    if command_id == 0x09:
        return schema(attribute_configs=[
            zf.AttributeReportingConfigWithStatus(status=r["status"], config=_config_obj(r)) for r in records])
    if command_id == 0x0B:
        return schema(command_id=fields["command_id"], status=fields["status"])
    if command_id in (0x0C, 0x15, 0x11, 0x13):
        return schema(**fields)
    if command_id in (0x0D, 0x16):
        complete = t.Bool(fields["discovery_complete"])
        if command_id == 0x0D:
            return schema(discovery_complete=complete, attribute_info=[
                zf.DiscoverAttributesResponseRecord(r["attribute_id"], zigpy_type(r["attribute_id"], r["data_type"]))
                for r in records])
        return schema(discovery_complete=complete, extended_attr_info=[
            zf.DiscoverAttributesExtendedResponseRecord(
                r["attribute_id"], zigpy_type(r["attribute_id"], r["data_type"]), r["access_control"])
            for r in records])
    if command_id == 0x0E:
        return schema(attributes=[zf.ReadAttributeStructured(r["attribute_id"], _selector_obj(r)) for r in records])
    if command_id == 0x0F:
        return schema(attributes=[zf.WriteAttributeStructured(
            r["attribute_id"], _selector_obj(r), zf.TypeValue(t.uint8_t(r["data_type"]),
                                                              zigpy_from_ours(r["data_type"], r["value"])))
            for r in records])
    if command_id == 0x10:
        return schema(status_records=zf.WriteAttributesStructuredResponse(
            zf.WriteAttributesStructuredStatusRecord(
                status=r["status"], attrid=r.get("attribute_id"),
                selector=_selector_obj(r) if "indexes" in r else None) for r in records))
    if command_id in (0x12, 0x14):
        return schema(discovery_complete=t.Bool(fields["discovery_complete"]), command_ids=fields["command_ids"])
    raise AssertionError(f"no zigpy form for command 0x{command_id:02x}")


def _typed(tv: zf.TypeValue) -> dict[str, Any]:
    return {"data_type": int(tv.type), "value": ours_from_zigpy(int(tv.type), tv.value)}


def _config_fields(config: zf.AttributeReportingConfig, *, full: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {"direction": int(config.direction), "attribute_id": int(config.attrid)}
    if not full:
        return record
    if config.direction == zf.ReportingDirection.ReceiveReports:
        return {**record, "timeout": int(config.timeout)}
    record.update(data_type=int(config.datatype), min_interval=int(config.min_interval),
                  max_interval=int(config.max_interval))
    if int(config.datatype) in ANALOG_TYPES:
        record["reportable_change"] = ours_from_zigpy(int(config.datatype), config.reportable_change)
    return record


def _selector_fields(selector: zf.Selector, *, write: bool) -> dict[str, Any]:
    indexes = [int(i) for i in selector.indexes]
    return {"operation": int(selector.op), "indexes": indexes} if write else {"indexes": indexes}


def from_zigpy(command_id: int, obj: Any) -> dict[str, Any]:
    """zigpy's decoded command in our field form."""
    if command_id == 0x00:
        return {"attribute_ids": [int(i) for i in obj.attribute_ids]}
    if command_id == 0x01:
        return {"records": [
            {"attribute_id": int(r.attrid), "status": int(r.status),
             **(_typed(r.value) if r.status == zf.Status.SUCCESS else {})} for r in obj.status_records]}
    if command_id in (0x02, 0x03, 0x05, 0x0A):
        attributes = obj.attribute_reports if command_id == 0x0A else obj.attributes
        return {"records": [{"attribute_id": int(a.attrid), **_typed(a.value)} for a in attributes]}
    if command_id in (0x04, 0x07):
        records = []
        for r in obj.status_records:
            record: dict[str, Any] = {"status": int(r.status)}
            if command_id == 0x07 and r.direction is not None:
                record["direction"] = int(r.direction)
            if r.attrid is not None:
                record["attribute_id"] = int(r.attrid)
            records.append(record)
        return {"records": records}
    if command_id == 0x06:
        return {"records": [_config_fields(c) for c in obj.config_records]}
    if command_id == 0x08:
        return {"records": [{"direction": int(r.direction), "attribute_id": int(r.attrid)}
                            for r in obj.attribute_records]}
    if command_id == 0x09:
        return {"records": [{"status": int(r.status), **_config_fields(r.config, full=r.status == zf.Status.SUCCESS)}
                            for r in obj.attribute_configs]}
    if command_id == 0x0B:
        return {"command_id": int(obj.command_id), "status": int(obj.status)}
    if command_id in (0x0C, 0x15):
        return {"start_attribute_id": int(obj.start_attribute_id), "max_attribute_ids": int(obj.max_attribute_ids)}
    if command_id in (0x11, 0x13):
        return {"start_command_id": int(obj.start_command_id), "max_command_ids": int(obj.max_command_ids)}
    if command_id == 0x0D:
        return {"discovery_complete": bool(obj.discovery_complete), "records": [
            {"attribute_id": int(r.attrid), "data_type": int(r.datatype)} for r in obj.attribute_info]}
    if command_id == 0x16:
        return {"discovery_complete": bool(obj.discovery_complete), "records": [
            {"attribute_id": int(r.attrid), "data_type": int(r.datatype), "access_control": int(r.acl)}
            for r in obj.extended_attr_info]}
    if command_id == 0x0E:
        return {"records": [{"attribute_id": int(r.attrid), **_selector_fields(r.selector, write=False)}
                            for r in obj.attributes]}
    if command_id == 0x0F:
        return {"records": [{"attribute_id": int(r.attrid), **_selector_fields(r.selector, write=True),
                             **_typed(r.value)} for r in obj.attributes]}
    if command_id == 0x10:
        return {"records": [
            {"status": int(r.status)} if r.status == zf.Status.SUCCESS else
            {"status": int(r.status), "attribute_id": int(r.attrid), **_selector_fields(r.selector, write=True)}
            for r in obj.status_records]}
    if command_id in (0x12, 0x14):
        return {"discovery_complete": bool(obj.discovery_complete), "command_ids": [int(i) for i in obj.command_ids]}
    raise AssertionError(f"no field form for zigpy command 0x{command_id:02x}")


# ------------------------------------------------------------------------------------- comparing


@dataclass(frozen=True, slots=True)
class Mismatch:
    direction: str
    command: str
    path: str
    """Where the two disagree ("records[1].value"), or <...> for the whole frame."""
    expected: Any
    got: Any


def canonical(value: Any) -> Any:
    """What a decoder gives back for `value`: no attribute names, NaN as None (the invalid value)."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items() if k != "name"}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)  # -0.0 is not 0.0 on the wire
    return type(a) is type(b) and a == b


def differences(expected: Any, got: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(expected, dict) and isinstance(got, dict):
        out = []
        for key in sorted(expected.keys() | got.keys()):
            out += differences(expected.get(key, "<absent>"), got.get(key, "<absent>"),
                               f"{path}.{key}" if path else key)
        return out
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        out = []
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            out += differences(e, g, f"{path}[{i}]")
        return out
    return [] if _same(expected, got) else [(path or "<fields>", expected, got)]


@dataclass(frozen=True, slots=True)
class Payload:
    command_id: int
    direction: Direction
    tsn: int
    fields: dict[str, Any]

    @property
    def name(self) -> str:
        return GLOBAL_BY_ID[self.command_id].name


def random_payload(g: Generator, command_id: int) -> Payload:
    default = GLOBAL_BY_ID[command_id].default_direction
    direction = Direction(g.rng.randint(0, 1)) if command_id == 0x0B else default
    return Payload(command_id, direction, g.uint(1), PAYLOADS[command_id](g))


def ours_to_zigpy(p: Payload) -> list[Mismatch]:
    """Encode with ours, decode with zigpy, compare with the payload."""
    def bad(path: str, expected: Any, got: Any) -> list[Mismatch]:
        return [Mismatch(OURS_TO_ZIGPY, p.name, path, expected, got)]

    try:
        frame = zigbee_se.encode_frame(CLUSTER, p.name, p.fields, tsn=p.tsn, direction=p.direction,
                                       max_frame_size=None)
    except EncodeError as exc:  # every generated payload is valid: a refusal is a bug on one side
        raise AssertionError(f"our encoder refused a valid payload: {p} ({exc})") from None
    try:
        header, rest = zf.ZCLHeader.deserialize(frame)
        obj, extra = zf.GENERAL_COMMANDS[zf.GeneralCommand(p.command_id)].schema.deserialize(rest)
    except Exception as exc:  # whatever zigpy raises on a frame is a difference to explain
        return bad("<zigpy decode>", frame.hex(), repr(exc))
        return bad("<zigpy decode>", frame.hex(), repr(exc))
    seen = (header.frame_control.frame_type, int(header.direction), int(header.tsn), int(header.command_id))
    if seen != (zf.FrameType.GLOBAL_COMMAND, int(p.direction), p.tsn, p.command_id):
        return bad("<header>", (p.direction, p.tsn, p.command_id), seen)
    if extra:
        return bad("<zigpy trailing>", b"", bytes(extra))
    return [Mismatch(OURS_TO_ZIGPY, p.name, path, e, g)
            for path, e, g in differences(expected(p), from_zigpy(p.command_id, obj))]


def zigpy_to_ours(p: Payload) -> list[Mismatch]:
    """Encode with zigpy, decode with ours, compare with the payload."""
    def bad(path: str, expected: Any, got: Any) -> list[Mismatch]:
        return [Mismatch(ZIGPY_TO_OURS, p.name, path, expected, got)]

    header = zf.ZCLHeader.general(p.tsn, p.command_id, direction=zf.Direction(int(p.direction)))
    try:
        frame = header.serialize() + to_zigpy(p.command_id, p.fields).serialize()
    except Exception as exc:  # ZigpyCannotWrite, or zigpy refusing the value itself
        return bad("<zigpy cannot write>", None, repr(exc))
    try:
        decoded = zigbee_se.decode_frame(CLUSTER, frame)
    except DecodeError as exc:
        return bad("<decode>", frame.hex(), str(exc))
    seen = (decoded.command, decoded.direction, decoded.tsn)
    if seen != (p.name, p.direction, p.tsn):
        return bad("<header>", (p.name, p.direction, p.tsn), seen)
    if decoded.trailing:
        return bad("<trailing>", b"", decoded.trailing)
    return [Mismatch(ZIGPY_TO_OURS, p.name, path, e, g)
            for path, e, g in differences(expected(p), canonical(decoded.fields))]


def one_value_report(type_id: int, value: Any, attribute_id: int = 0x5A5A) -> Payload:
    """A Report Attributes of one value: the smallest frame that shows a value-level error."""
    return Payload(0x0A, Direction.SERVER_TO_CLIENT, 1,
                   {"records": [{"attribute_id": attribute_id, "data_type": type_id, "value": value}]})


ALL_COMMAND_IDS = tuple(c.command_id for c in GLOBAL_COMMANDS)
