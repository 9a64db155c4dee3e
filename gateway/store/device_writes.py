"""The store side of device writes (a set_enrollment_group request: ZCL Write Attributes to one
device's DRLC client attributes): the request row, the device it may go to, the writes waiting for
their device's answer, and those whose answer never came.

A device write is an ordinary HAN request with one delivery (tables `han_requests`,
`han_deliveries`); its delivery names its device (`target_eui64`, migration 0014). Its answer (a
Write Attributes Response, or a Default Response refusing the command) carries no SE id, only the
ZCL sequence number of the write, which the gateway takes from the request's SE id (`se_id` mod
256): an answer is matched by premise, device and sequence number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.schema import han_deliveries, han_devices, han_requests

WRITE_COMMAND = "write_attributes"
# A write is waiting for its device's answer in these delivery states (the route took it; the
# meter may or may not have confirmed delivery yet: answers can overtake delivery reports).
AWAITING_ANSWER = ("submitted", "delivered")
# ...and an answer is taken in these: a fast route's device may answer before the dispatcher has
# recorded the write `submitted` (as a delivery report may, inbound.mark_delivered).
ANSWERABLE = ("queued", *AWAITING_ANSWER)


async def device_status(engine: AsyncEngine, esi_id: str, eui64: str) -> str | None:
    """The device's provisioning status at the premise (`han_devices.status`), None if unknown."""
    async with engine.connect() as conn:
        found: str | None = (await conn.execute(sa.select(han_devices.c.status).where(
            han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64))).scalar()
    return found


async def insert_request(conn: AsyncConnection, *, party_id: int | None, kind: str, body: str, se_id: int,
                         command: str, starts_at: datetime, ends_at: datetime, now: datetime) -> int:
    """The request row of a device write (one premise, never a fan-out); NULL party: the operator's."""
    result = await conn.execute(han_requests.insert().values(
        party_id=party_id, kind=kind, body=body, se_id=se_id, command=command, target_all=False,
        fanout_after=None, targeted=1, excluded="[]", state="accepted", cancels_request_id=None,
        part_of_request_id=None, starts_at=starts_at, ends_at=ends_at, created_at=now))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def insert_deliveries(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """The write's delivery row(s), each naming its device (`target_eui64`)."""
    if rows:
        await conn.execute(han_deliveries.insert(), list(rows))


async def awaiting_answer(conn: AsyncConnection, devices: Sequence[tuple[str, str]]) -> list[Any]:
    """Writes sent to these (ESI ID, EUI-64) devices that no answer has ended yet, with what
    matching and the answer's transition need."""
    if not devices:
        return []
    wanted = set(devices)
    euis = sorted({eui for _esi, eui in wanted})
    rows: list[Any] = []
    for i in range(0, len(euis), 500):  # bound the IN list (SQLite's variable limit)
        rows.extend(r for r in (await conn.execute(awaiting_query(euis[i:i + 500]))).all()
                    if (r.esi_id, r.target_eui64) in wanted)
    return rows


def awaiting_query(euis: Sequence[str]) -> sa.Select[Any]:
    """By device first: the partial index of device writes, never a premise's whole history."""
    d = han_deliveries.c
    return sa.select(d.id, d.request_id, d.party_id, d.esi_id, d.agreement_id, d.se_id, d.target_eui64,
                     d.fields).where(d.target_eui64.in_(euis), d.command == WRITE_COMMAND, _state_in(ANSWERABLE))


async def unanswered(conn: AsyncConnection, now: datetime, limit: int) -> list[Any]:
    """Writes handed on whose time ran out without an answer from their device."""
    return list((await conn.execute(unanswered_query(now, limit))).all())


def unanswered_query(now: datetime, limit: int) -> sa.Select[Any]:
    d = han_deliveries.c
    return sa.select(d.id, d.request_id, d.party_id, d.esi_id).where(
        d.command == WRITE_COMMAND, d.target_eui64.is_not(None), _state_in(AWAITING_ANSWER),
        d.expires_at <= now).limit(limit)


def _state_in(states: Sequence[str]) -> Any:
    """`state IN states` as a filter, not an index term: SQLite's planner would otherwise walk
    ix_han_deliveries_due over every delivered row (a fan-out's million) instead of the partial
    index of device writes (the same trick as delivery_queue.set_delivery_state)."""
    return han_deliveries.c.state.concat("").in_(states)
