"""ZCL Write Attributes on a simulated device's own attributes (ZCL 07-5123 §2.5.3 to §2.5.6).

Plain values in, plain values out: the device decodes the frame, hands the records here with the
table of what it has, and encodes the Write Attributes Response from the failures returned.

- Write Attributes (0x02): every acceptable record is written; each refused one is reported.
- Write Attributes Undivided (0x03): all or nothing; if one record is refused none is written.
- Write Attributes No Response (0x05): as 0x02, and nothing is answered at all.
- The response lists a status record (status, attribute id) for each failure only; when every
  record was written it is one SUCCESS status byte (§2.5.5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SUCCESS = 0x00
UNSUPPORTED_ATTRIBUTE = 0x86
INVALID_VALUE = 0x87
READ_ONLY = 0x88
INVALID_DATA_TYPE = 0x8D


@dataclass(frozen=True, slots=True)
class WritableAttribute:
    """An integer attribute: the ZCL data types it accepts and its valid range."""

    name: str
    data_types: tuple[int, ...]
    lo: int
    hi: int


def write_status(spec: WritableAttribute | None, read_only: bool, record: Mapping[str, Any]) -> int:
    """The status one record earns, checked in the order ZCL lists them."""
    if spec is None:
        return UNSUPPORTED_ATTRIBUTE
    if read_only:
        return READ_ONLY
    if record.get("data_type") not in spec.data_types:
        return INVALID_DATA_TYPE
    value = record.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or not spec.lo <= value <= spec.hi:
        return INVALID_VALUE
    return SUCCESS


def write_records(records: Iterable[Mapping[str, Any]], table: Mapping[int, WritableAttribute],
                  read_only: Iterable[int], write: Callable[[int, int], None], *,
                  undivided: bool = False) -> list[dict[str, int]]:
    """Check and write `records`; return the failures as Write Attributes Response records.

    `write(attribute_id, value)` is called for each accepted record, in frame order, and not at
    all for an undivided write with a failure."""
    locked = frozenset(read_only)
    failures: list[dict[str, int]] = []
    accepted: list[tuple[int, int]] = []
    for record in records:
        attr_id = int(record["attribute_id"])
        status = write_status(table.get(attr_id), attr_id in locked, record)
        if status == SUCCESS:
            accepted.append((attr_id, int(record["value"])))
        else:
            failures.append({"status": status, "attribute_id": attr_id})
    if not (undivided and failures):
        for attr_id, value in accepted:
            write(attr_id, value)
    return failures


def response_records(failures: list[dict[str, int]]) -> list[dict[str, int]]:
    """The Write Attributes Response records: the failures, or one SUCCESS status when none.

    Built so even a codec that writes a bare SUCCESS byte per successful record (the pre-fix
    encoder) produces the ZCL layout: no successful record is ever handed to it."""
    return failures if failures else [{"status": SUCCESS}]
