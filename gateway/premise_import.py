"""Bulk premise import from CSV (the columns a TDSP premise extract carries).

Header (order free, names case-insensitive): esi_id, meter_number, customer_email, rep,
premise_class, se_version, enhanced_meter. Only esi_id and meter_number are required columns.
Every bad row is reported with its line number, its column and the problem; good rows are stored
(in chunks, one transaction each). Re-importing updates premises by ESI ID, never duplicates. When
a premise's customer email changes, the customer moved out: agreements on it end (by the system).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.agreements import EMAIL_RE, AgreementService
from gateway.clock import Clock
from gateway.domain.esi_id import EsiIdError, tdsp_for_esi_id
from gateway.domain.model import PremiseClass
from gateway.store.store import Store

COLUMNS = ("esi_id", "meter_number", "customer_email", "rep", "premise_class", "se_version",
           "enhanced_meter")
REQUIRED = ("esi_id", "meter_number")
SE_VERSIONS = ("1.0", "1.1", "1.2")
TRUE_WORDS = {"true", "yes", "y", "1"}
FALSE_WORDS = {"false", "no", "n", "0", ""}
CHUNK_ROWS = 500


@dataclass(frozen=True)
class RowError:
    row: int  # line number in the file; the header is line 1
    column: str
    value: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.row}, column {self.column} = {self.value!r}: {self.problem}"


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    agreements_ended: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "created": self.created, "updated": self.updated,
            "unchanged": self.unchanged, "rejected_rows": len({e.row for e in self.errors}),
            "agreements_ended": self.agreements_ended,
            "errors": [{"row": e.row, "column": e.column, "value": e.value,
                        "problem": e.problem} for e in self.errors],
        }


class HeaderError(ValueError):
    def __init__(self, missing: list[str], unknown: list[str]) -> None:
        parts = []
        if missing:
            parts.append(f"missing required column(s): {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s): {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
        super().__init__("; ".join(parts))
        self.missing = missing
        self.unknown = unknown


def parse_row(line: int, raw: dict[str, str]) -> tuple[dict[str, Any] | None, list[RowError]]:
    """One CSV row to premise values, or the list of what is wrong with it."""
    errors: list[RowError] = []
    get = {k: (v or "").strip() for k, v in raw.items() if k is not None}
    esi_id = get.get("esi_id", "")
    try:
        tdsp = tdsp_for_esi_id(esi_id).value
    except EsiIdError as exc:
        errors.append(RowError(line, "esi_id", esi_id, exc.reason))
        tdsp = ""
    meter = get.get("meter_number", "")
    if not meter:
        errors.append(RowError(line, "meter_number", meter, "required"))
    elif len(meter) > 40:
        errors.append(RowError(line, "meter_number", meter, "at most 40 characters"))
    email = get.get("customer_email", "")
    if email and not EMAIL_RE.match(email):
        errors.append(RowError(line, "customer_email", email, "not an email address"))
    klass = get.get("premise_class", "") or PremiseClass.RESIDENTIAL.value
    if klass not in {c.value for c in PremiseClass}:
        errors.append(RowError(line, "premise_class", klass,
                               f"one of {', '.join(c.value for c in PremiseClass)}"))
    se_version = get.get("se_version", "")
    if se_version and se_version not in SE_VERSIONS:
        errors.append(RowError(line, "se_version", se_version,
                               f"one of {', '.join(SE_VERSIONS)} or empty (no HAN)"))
    enhanced = get.get("enhanced_meter", "").lower()
    if enhanced not in TRUE_WORDS | FALSE_WORDS:
        errors.append(RowError(line, "enhanced_meter", get.get("enhanced_meter", ""),
                               "true or false (also yes/no, y/n, 1/0)"))
    if errors:
        return None, errors
    return {
        "esi_id": esi_id, "tdsp": tdsp, "meter_number": meter,
        "customer_email": email or None, "rep": get.get("rep") or None,
        "premise_class": klass, "se_version": se_version or None,
        "enhanced_meter": enhanced in TRUE_WORDS,
    }, []


async def import_premises(
    lines: Iterable[str],
    store: Store,
    agreements: AgreementService,
    clock: Clock,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import CSV `lines`; `progress(n)` is called after each chunk with the rows it covered."""
    reader = csv.DictReader(lines)
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        raise HeaderError(missing, unknown)
    reader.fieldnames = header
    report = ImportReport()
    chunk: list[dict[str, Any]] = []
    seen: dict[str, int] = {}

    async def flush() -> None:
        if not chunk:
            return
        before = await store.get_premises([r["esi_id"] for r in chunk])
        outcomes = await store.upsert_premises(chunk, clock.now())
        for values, outcome in zip(chunk, outcomes, strict=True):
            setattr(report, outcome, getattr(report, outcome) + 1)
            old = before.get(values["esi_id"])
            if old is not None and old.customer_email and (
                    (old.customer_email or "").lower() != (values["customer_email"] or "").lower()):
                ended = await agreements.terminate_for_premise(
                    values["esi_id"], "the customer of record changed (move-out)")
                report.agreements_ended += len(ended)
        if progress is not None:
            progress(len(chunk))
        chunk.clear()

    for raw in reader:
        report.rows += 1
        line = reader.line_num
        values, errors = parse_row(line, raw)
        if values is not None and values["esi_id"] in seen:
            errors = [RowError(line, "esi_id", values["esi_id"],
                               f"duplicate of line {seen[values['esi_id']]} in this file")]
            values = None
        if values is None:
            report.errors.extend(errors)
            if progress is not None:
                progress(1)
            continue
        seen[values["esi_id"]] = line
        chunk.append(values)
        if len(chunk) >= CHUNK_ROWS:
            await flush()
    await flush()
    return report
