"""The frame log (table `han_frame_log`): every SE frame the gateway received from a home, and the
frames it sent other than a delivery's (a delivery handed to its route is recorded on its own row,
`han_deliveries.submitted_at`, since migration 0017: docs/pipeline.md "Audit"), with the premise,
device, request and delivery it belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.bulk import insert_many
from gateway.store.schema import han_frame_log

# What makes two inbound frames the same frame (a route's replay): premise, device, time, cluster,
# command, frame (hex).
LoggedKey = tuple[str, str | None, datetime, int, str, str | None]


async def log_frames(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Rows (at, direction, esi_id, eui64, request_id, delivery_id, agreement_id, cluster_id,
    command, frame) in one executemany, in the caller's transaction."""
    if rows:
        await insert_many(conn, han_frame_log, rows)


async def logged_inbound(conn: AsyncConnection, esi_ids: Sequence[str], times: Sequence[datetime]) -> set[LoggedKey]:
    """The keys (`LoggedKey`) of inbound frames already logged for these premises at these times
    (`times` sorted): what a replayed device answer finds."""
    logged: set[LoggedKey] = set()
    for i in range(0, len(esi_ids), 200):  # bound the IN list (SQLite's variable limit)
        logged.update(tuple(r) for r in (await conn.execute(sa.select(
            han_frame_log.c.esi_id, han_frame_log.c.eui64, han_frame_log.c.at, han_frame_log.c.cluster_id,
            han_frame_log.c.command, han_frame_log.c.frame).where(
            han_frame_log.c.direction == "in", han_frame_log.c.esi_id.in_(esi_ids[i:i + 200]),
            han_frame_log.c.at.in_(times[:500]) if len(times) <= 500 else
            han_frame_log.c.at.between(times[0], times[-1])))).all())
    return logged
