"""Who owns a row: the one question the authorization policy asks the store about an id.

Each resource a third party can own is a table with a `party_id`; a device is owned by the party
that provisioned it (NULL when an operator or a technician did). `owner(...)` answers `Missing`
for an unknown id, so that a foreign id and an unknown one are told apart only here, never to the
caller (the policy answers both the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.schema import (
    agreements,
    credentials,
    han_devices,
    han_requests,
    meter_reads,
    parties,
    technicians,
    usage_reports,
    webhooks,
)

# The largest id a row can have: the id columns are INTEGER, 32-bit on PostgreSQL. Larger ids are
# unknown by definition and never sent to the database (PostgreSQL refuses them, SQLite overflows
# past 2^63).
MAX_ROW_ID: Final = 2**31 - 1


@dataclass(frozen=True)
class Owned:
    party_id: int | None  # None: no party owns it (an operator's or a technician's)


class Missing:
    """No such row."""


MISSING: Final = Missing()

_TABLES: Final = {
    "party": (parties, parties.c.id),
    "credential": (credentials, credentials.c.party_id),
    "technician": (technicians, None),
    "agreement": (agreements, agreements.c.party_id),
    "han_request": (han_requests, han_requests.c.party_id),
    "webhook": (webhooks, webhooks.c.party_id),
    "meter_read": (meter_reads, meter_reads.c.party_id),
    "usage_report": (usage_reports, usage_reports.c.party_id),
}


def parse_row_id(raw: str) -> int | None:
    """A path's id as an int if it can name a row (1 … 2^31-1, plain decimal), else None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ROW_ID else None


async def owner(engine: AsyncEngine, resource: str, row_id: int) -> Owned | Missing:
    table, party_column = _TABLES[resource]
    column = party_column if party_column is not None else table.c.id
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(column).where(table.c.id == row_id))).first()
    if row is None:
        return MISSING
    return Owned(None if party_column is None else row[0])


async def device_owner(engine: AsyncEngine, esi_id: str, eui64: str) -> Owned | Missing:
    """The party that provisioned the device at the premise (None: an operator or a technician)."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(han_devices.c.party_id).where(
            han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64.upper()))).first()
    if row is None:
        return MISSING
    return Owned(row[0])
