"""Head-end references per delivery: the route's own id for an item (a head-end transaction id,
`SubmitResult.reference` / `DeliveredToMeter.reference`), kept on the delivery so that an operator
can find the item in the head-end's logs, and shown in `GET /v1/han-requests/{id}/deliveries`."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.schema import han_deliveries

MAX_REFERENCE = 100  # the column's width

_SET_REFERENCE = han_deliveries.update().where(han_deliveries.c.id == sa.bindparam("b_id")).values(
    reference=sa.bindparam("b_reference"))


async def keep_references(conn: AsyncConnection, pairs: Iterable[tuple[int, str | None]]) -> None:
    """Store (delivery id, reference) pairs in one executemany; items without one are skipped."""
    params = [{"b_id": delivery_id, "b_reference": ref[:MAX_REFERENCE]} for delivery_id, ref in pairs if ref]
    if params:
        await conn.execute(_SET_REFERENCE, params)
