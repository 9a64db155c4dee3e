"""The operator's page's reads (gateway/pages/operator.py): premises, the delivery queue and its
latest failures per TDSP, and HAN devices whose provisioning is under way. Counts are grouped in
SQL; lists are bounded."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.schema import han_deliveries, han_devices, premises

IN_PROGRESS = ("provision_requested", "find_pending", "delete_requested")  # DeviceStatus not yet settled


async def premises_by_tdsp(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    """How many premises each TDSP has in each status."""
    query = sa.select(premises.c.tdsp, premises.c.status, sa.func.count()).group_by(premises.c.tdsp, premises.c.status)
    async with engine.connect() as conn:
        return {(t, s): n for t, s, n in (await conn.execute(query)).all()}


async def deliveries_by_tdsp(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    """How many deliveries each TDSP's premises have in each state (the queue: queued, submitted…)."""
    query = (sa.select(premises.c.tdsp, han_deliveries.c.state, sa.func.count())
             .select_from(han_deliveries.join(premises, premises.c.esi_id == han_deliveries.c.esi_id))
             .group_by(premises.c.tdsp, han_deliveries.c.state))
    async with engine.connect() as conn:
        return {(t, s): n for t, s, n in (await conn.execute(query)).all()}


async def latest_failures(engine: AsyncEngine, limit: int) -> list[Any]:
    """The newest deliveries that failed or were retried with a reason: tdsp, esi_id, state, reason, updated_at."""
    query = (sa.select(premises.c.tdsp, han_deliveries.c.esi_id, han_deliveries.c.state, han_deliveries.c.reason,
                       han_deliveries.c.updated_at)
             .select_from(han_deliveries.join(premises, premises.c.esi_id == han_deliveries.c.esi_id))
             .where(han_deliveries.c.reason.is_not(None))
             .order_by(han_deliveries.c.updated_at.desc()).limit(limit))
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def provisioning_in_progress(engine: AsyncEngine, limit: int) -> list[Any]:
    """HAN devices whose provisioning or removal is not settled yet, oldest first."""
    query = (sa.select(premises.c.tdsp, han_devices.c.esi_id, han_devices.c.eui64, han_devices.c.device_type,
                       han_devices.c.status, han_devices.c.party_id, han_devices.c.updated_at)
             .select_from(han_devices.join(premises, premises.c.esi_id == han_devices.c.esi_id))
             .where(han_devices.c.status.in_(IN_PROGRESS))
             .order_by(han_devices.c.updated_at).limit(limit))
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())
