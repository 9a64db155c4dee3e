"""The store side of price acknowledgements (`han_deliveries.ack_due_at`, migration 0015): which
delivered prices and block periods asked their devices to acknowledge, which are past their time,
and what the gateway knows of the devices that should have acknowledged.

A delivery awaits acknowledgements while `ack_due_at` is set: from its delivery to the meter
(`deliveries.mark_delivered`) until the dispatcher's sweep decides it (gateway/pipeline/price_acks.py)
and clears the column. A partial index holds only those rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.schema import han_deliveries, han_device_states, han_devices, han_requests

# The SE commands that carry an acknowledgement bit, and its field: Price Control / Block Period
# Control bit 0 = "acknowledgement required" (SE_FRAMES.md §2.4).
ACK_CONTROL = {"publish_price": "price_control", "publish_block_period": "block_period_control"}
ACKNOWLEDGED = "acknowledged"
_D = han_deliveries.c


def wants_acknowledgement(command: str, fields: dict[str, Any]) -> bool:
    """Whether the command asks its devices to acknowledge (0xFF: an SE 1.0 frame's "no field")."""
    control = fields.get(ACK_CONTROL.get(command, ""))
    return isinstance(control, int) and control != 0xFF and bool(control & 0x01)


async def asking(conn: AsyncConnection, rows: Sequence[Any]) -> set[int]:
    """Ids of the delivery rows (id, request_id, command, fields) that ask for an acknowledgement.
    A fan-out's rows carry no fields (their request's command holds them): one read of the
    distinct requests, only when such rows are in the batch."""
    candidates = [r for r in rows if r.command in ACK_CONTROL]
    shared = sorted({r.request_id for r in candidates if r.fields is None})
    commands: dict[int, dict[str, Any]] = {}
    for i in range(0, len(shared), 500):
        for request_id, text in (await conn.execute(sa.select(han_requests.c.id, han_requests.c.command).where(
                han_requests.c.id.in_(shared[i:i + 500])))).all():
            if text is not None:
                commands[request_id] = json.loads(text).get("fields", {})
    found: set[int] = set()
    for r in candidates:
        fields = commands.get(r.request_id, {}) if r.fields is None else json.loads(r.fields)
        if wants_acknowledgement(r.command, fields):
            found.add(r.id)
    return found


async def overdue(conn: AsyncConnection, now: datetime, limit: int) -> list[Any]:
    """Up to `limit` deliveries (id, request_id, party_id, esi_id, state) whose devices' time to
    acknowledge has run out (the partial index of awaited rows)."""
    return list((await conn.execute(overdue_query(now, limit))).all())


def overdue_query(now: datetime, limit: int) -> sa.Select[Any]:
    return sa.select(_D.id, _D.request_id, _D.party_id, _D.esi_id, _D.state).where(
        _D.ack_due_at.is_not(None), _D.ack_due_at <= now).order_by(_D.ack_due_at).limit(limit)


async def claim(conn: AsyncConnection, ids: Sequence[int]) -> set[int]:
    """Stop awaiting these deliveries (in the caller's transaction); returns the ids this call
    took (another pass may have decided some meanwhile: each is decided once)."""
    taken: set[int] = set()
    for i in range(0, len(ids), 500):
        result = await conn.execute(han_deliveries.update().where(
            _D.id.in_(ids[i:i + 500]), _D.ack_due_at.is_not(None)).values(ack_due_at=None).returning(_D.id))
        taken.update(result.scalars().all())
    return taken


async def device_states(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Delivery id -> {device EUI-64 as recorded: its state} for these deliveries."""
    found: dict[int, dict[str, str]] = {}
    for i in range(0, len(ids), 500):
        for delivery_id, eui64, state in (await conn.execute(sa.select(
                han_device_states.c.delivery_id, han_device_states.c.eui64, han_device_states.c.state).where(
                han_device_states.c.delivery_id.in_(ids[i:i + 500])))).all():
            found.setdefault(delivery_id, {})[eui64] = state
    return found


async def joined_devices(conn: AsyncConnection, esi_ids: Sequence[str]) -> dict[str, list[str]]:
    """ESI ID -> the EUI-64s (16 hex digits) of its devices on record as joined."""
    found: dict[str, list[str]] = {}
    wanted = sorted(set(esi_ids))
    for i in range(0, len(wanted), 500):
        for esi_id, eui64 in (await conn.execute(sa.select(han_devices.c.esi_id, han_devices.c.eui64).where(
                han_devices.c.esi_id.in_(wanted[i:i + 500]), han_devices.c.status == "joined"))).all():
            found.setdefault(esi_id, []).append(eui64)
    return found
