"""Reads of HAN requests and their deliveries for the API (tables `han_requests`, `han_deliveries`,
`han_device_states`, `han_transitions`): a request's summary and its per-premise items.

The pipeline's writes on these tables (group commit, dispatch, transitions) are in
gateway/pipeline/ (group_commit.py, dispatcher.py, service.py, delivery_queue.py): moving them here is still to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.schema import han_deliveries, han_device_states, han_requests, han_transitions


@dataclass(frozen=True)
class RequestSummary:
    premises_by_state: dict[str, int]
    devices_by_state: dict[str, int]
    parts: list[int]  # companion requests (a price's block period), oldest first


@dataclass(frozen=True)
class DeliveryItem:
    row: Any  # a han_deliveries row
    devices: list[Any]  # its han_device_states rows
    history: list[Any]  # its han_transitions rows, oldest first


async def get_request(engine: AsyncEngine, request_id: int) -> Any | None:
    """The han_requests row, or None."""
    async with engine.connect() as conn:
        return (await conn.execute(han_requests.select().where(han_requests.c.id == request_id))).first()


async def summarize(engine: AsyncEngine, request_id: int) -> RequestSummary:
    async with engine.connect() as conn:
        by_state: dict[str, int] = dict((await conn.execute(sa.select(han_deliveries.c.state, sa.func.count()).where(
            han_deliveries.c.request_id == request_id).group_by(han_deliveries.c.state))).all())
        parts = (await conn.execute(sa.select(han_requests.c.id).where(
            han_requests.c.part_of_request_id == request_id).order_by(han_requests.c.id))).scalars().all()
        devices: dict[str, int] = dict((await conn.execute(sa.select(han_device_states.c.state, sa.func.count()).join(
            han_deliveries, han_deliveries.c.id == han_device_states.c.delivery_id).where(
            han_deliveries.c.request_id == request_id).group_by(han_device_states.c.state))).all())
    return RequestSummary(by_state, devices, list(parts))


async def list_deliveries(engine: AsyncEngine, request_id: int, *, after: int, limit: int,
                          state: str | None = None, esi_id: str | None = None) -> Sequence[DeliveryItem]:
    """The request's deliveries by id after `after`, each with its device states and history."""
    query = han_deliveries.select().where(han_deliveries.c.request_id == request_id,
                                          han_deliveries.c.id > after)
    if state is not None:
        query = query.where(han_deliveries.c.state == state)
    if esi_id is not None:
        query = query.where(han_deliveries.c.esi_id == esi_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(han_deliveries.c.id).limit(limit))).all()
        ids = [r.id for r in rows]
        devs = (await conn.execute(han_device_states.select().where(
            han_device_states.c.delivery_id.in_(ids)))).all() if ids else []
        hist = (await conn.execute(han_transitions.select().where(
            han_transitions.c.delivery_id.in_(ids)).order_by(han_transitions.c.id))).all() if ids else []
    return [DeliveryItem(r, [d for d in devs if d.delivery_id == r.id], [h for h in hist if h.delivery_id == r.id])
            for r in rows]


# -- the dispatcher's reads and the group commit's insert (gateway/pipeline/dispatcher.py, group_commit.py)

async def expanding_fanouts(engine: AsyncEngine, limit: int) -> list[Any]:
    """Requests whose fan-out still has premises to expand (han_requests rows), oldest first."""
    async with engine.connect() as conn:
        return list((await conn.execute(han_requests.select().where(
            han_requests.c.fanout_after.is_not(None)).order_by(han_requests.c.id).limit(limit))).all())


async def shared_commands(engine: AsyncEngine, request_ids: set[int]) -> dict[int, str]:
    """Request id -> its shared command (JSON: fields and the frame per SE version) for the
    requests that have one."""
    if not request_ids:
        return {}
    async with engine.connect() as conn:
        return {rid: cmd for rid, cmd in (await conn.execute(sa.select(han_requests.c.id, han_requests.c.command).where(
            han_requests.c.id.in_(request_ids)))).all() if cmd is not None}


async def insert_requests(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Insert request rows in one statement (in the caller's transaction); returns SE id ->
    request id (the SE id is unique per request: it maps the RETURNING rows, which come in no
    promised order, back to their requests)."""
    returned = (await conn.execute(han_requests.insert().returning(han_requests.c.id, han_requests.c.se_id),
                                   list(rows))).all()
    return {int(se_id): int(request_id) for request_id, se_id in returned}
