"""Route events into the store, in bulk and idempotently.

Routes deliver their events at least once: `RemoteSimulatedRoute` reads the field's event log from
the start after a gateway restart, and a head-end may resend a notification it is not sure we got.
Applying an event twice must change nothing:

- `DeliveredToMeter` (and failures) move a delivery only from `queued`/`submitted`, so a replay
  finds it delivered already and records no transition and no webhook event;
- a `DeviceResponse` is the same answer again when the frame log already holds an inbound frame
  of that device with the same time, cluster, command and bytes (`seen_before`): it is skipped
  whole (no second frame-log row, history row or webhook event).

`DeliveredToMeter` events that arrive together are written with three statements in all (read the
deliveries, update them, record their transitions) instead of a handful per event: at 100
deliveries per second that was most of the gateway's database round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ams_adapters.contract import DeliveredToMeter
from gateway.pipeline import outbox
from gateway.store.schema import han_deliveries, han_frame_log

CANCEL_COMMANDS = ("cancel_message", "cancel_load_control_event")


def _dt(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


async def mark_delivered(conn: AsyncConnection, events: Sequence[DeliveredToMeter]) -> list[tuple[Any, datetime]]:
    """Apply `DeliveredToMeter` events (in the caller's transaction). Returns the cancel deliveries
    that reached their meter now, with their time, for the caller to mark the originals cancelled."""
    by_id: dict[int, DeliveredToMeter] = {}
    for ev in events:
        delivery_id = outbox.delivery_of(ev.outbound_id)
        if delivery_id is not None:
            by_id.setdefault(delivery_id, ev)  # a duplicate within the batch is applied once
    if not by_id:
        return []
    rows = []
    ids = list(by_id)
    for i in range(0, len(ids), 500):  # bound the IN list (SQLite's variable limit)
        rows.extend((await conn.execute(sa.select(
            han_deliveries.c.id, han_deliveries.c.request_id, han_deliveries.c.party_id,
            han_deliveries.c.esi_id, han_deliveries.c.command, han_deliveries.c.se_id,
            han_deliveries.c.state).where(han_deliveries.c.id.in_(ids[i:i + 500])))).all())
    moving = [r for r in rows if r.state in (outbox.QUEUED, outbox.SUBMITTED)]
    if not moving:
        return []
    # One executemany; the state condition is repeated so that the update, not the read, decides.
    await conn.execute(han_deliveries.update().where(
        han_deliveries.c.id == sa.bindparam("b_id"),
        sa.or_(han_deliveries.c.state == outbox.QUEUED, han_deliveries.c.state == outbox.SUBMITTED)).values(
        state=outbox.DELIVERED, updated_at=sa.bindparam("b_at"), next_attempt_at=None,
        reference=sa.func.coalesce(sa.bindparam("b_reference", type_=sa.String), han_deliveries.c.reference)),
        [{"b_id": r.id, "b_at": _dt(by_id[r.id].at), "b_reference": (by_id[r.id].reference or "")[:100] or None}
         for r in moving])
    await outbox.record_transitions(conn, [outbox.Transition(
        r.id, r.request_id, r.party_id, r.esi_id, None, outbox.DELIVERED, _dt(by_id[r.id].at)) for r in moving])
    return [(r, _dt(by_id[r.id].at)) for r in moving if r.command in CANCEL_COMMANDS]


async def seen_before(conn: AsyncConnection, *, esi_id: str, eui64: str | None, at: datetime,
                      cluster_id: int, command: str, frame: str | None) -> bool:
    """Whether this device answer is in the frame log already (a replayed event)."""
    query = sa.select(han_frame_log.c.id).where(
        han_frame_log.c.esi_id == esi_id, han_frame_log.c.direction == "in", han_frame_log.c.at == at,
        han_frame_log.c.cluster_id == cluster_id, han_frame_log.c.command == command[:40])
    query = query.where(han_frame_log.c.eui64.is_(None) if eui64 is None else han_frame_log.c.eui64 == eui64)
    query = query.where(han_frame_log.c.frame.is_(None) if frame is None else han_frame_log.c.frame == frame)
    return (await conn.execute(query.limit(1))).first() is not None
