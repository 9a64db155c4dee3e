"""ESI IDs and the TDSP they belong to.

An ESI ID is `10` + a 5-digit utility code + premise digits; the 7-digit prefix names the TDSP and
fixes the length (DOMAIN.md). CenterPoint's are 22 digits, everyone else's 17.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Tdsp(enum.StrEnum):
    """The TDSPs by the one name the API, `[routes.tdsp.<name>]` and the head-end profiles
    (firmware_fixtures/headends/<name>.toml) all use."""

    ONCOR = "oncor"
    CENTERPOINT = "centerpoint"
    AEP_CENTRAL = "aep_central"  # AEP Texas Central
    AEP_NORTH = "aep_north"  # AEP Texas North
    TNMP = "tnmp"


@dataclass(frozen=True)
class TdspPrefix:
    prefix: str
    tdsp: Tdsp
    length: int


# One row per prefix; Oncor has two (the East Texas territory keeps its own code).
TDSP_PREFIXES: tuple[TdspPrefix, ...] = (
    TdspPrefix("1044372", Tdsp.ONCOR, 17),
    TdspPrefix("1017699", Tdsp.ONCOR, 17),
    TdspPrefix("1008901", Tdsp.CENTERPOINT, 22),
    TdspPrefix("1003278", Tdsp.AEP_CENTRAL, 17),
    TdspPrefix("1020404", Tdsp.AEP_NORTH, 17),
    TdspPrefix("1040051", Tdsp.TNMP, 17),
)


class EsiIdError(ValueError):
    """An ESI ID that cannot be a Texas ESI ID; `code` is machine-readable, `reason` for people."""

    def __init__(self, value: str, code: str, reason: str) -> None:
        super().__init__(f"ESI ID {value!r}: {reason}")
        self.field = "esi_id"
        self.value = value
        self.code = code
        self.reason = reason


def tdsp_for_esi_id(esi_id: str) -> Tdsp:
    """The TDSP whose prefix `esi_id` carries; EsiIdError when not digits, no TDSP or bad length."""
    if not esi_id or not esi_id.isascii() or not esi_id.isdigit():
        raise EsiIdError(esi_id, "esi_id_not_digits", "an ESI ID consists of digits only")
    for row in TDSP_PREFIXES:
        if esi_id.startswith(row.prefix):
            if len(esi_id) != row.length:
                raise EsiIdError(
                    esi_id,
                    "esi_id_wrong_length",
                    f"{row.tdsp.value} ESI IDs (prefix {row.prefix}) have {row.length} digits, "
                    f"this one has {len(esi_id)}",
                )
            return row.tdsp
    known = ", ".join(r.prefix for r in TDSP_PREFIXES)
    raise EsiIdError(
        esi_id, "esi_id_unknown_tdsp", f"the prefix {esi_id[:7]} matches no TDSP (known: {known})"
    )


def _pattern() -> str:
    by_length: dict[int, list[str]] = {}
    for row in TDSP_PREFIXES:
        by_length.setdefault(row.length, []).append(row.prefix)
    alternatives = [f"(?:{'|'.join(prefixes)})[0-9]{{{length - 7}}}" for length, prefixes in sorted(by_length.items())]
    return f"^(?:{'|'.join(alternatives)})$"


ESI_ID_PATTERN = _pattern()
"""What `tdsp_for_esi_id` accepts, as a regular expression (for the OpenAPI document)."""
