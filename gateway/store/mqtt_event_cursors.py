"""Where each party's MQTT event stream stands (table `mqtt_event_cursors`): the id of the last event
the broker acknowledged, and the claim of the instance publishing the party's events now.

Claimed as the outboxes' rows are (gateway/store/row_claims.py): a cursor is due when its lease is
over, its party has live broker credentials and has events past it; a claim sets the lease and
counts an attempt (the fencing token); only the claim that holds the cursor moves it (`finish`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import row_claims
from gateway.store.schema import mqtt_credentials, mqtt_event_cursors, party_events


@dataclass(frozen=True)
class Cursor:
    id: int
    party_id: int
    last_event_id: int
    attempts: int  # the claim's fencing token


async def start(conn: AsyncConnection, party_id: int, *, from_now: bool) -> None:
    """The party's cursor, created at its newest event if it has none; `from_now` moves an existing
    one there too (credentials issued anew after a revocation start from the present; a rotation
    keeps the cursor: the new credentials see what the old ones had not yet been sent)."""
    newest = sa.select(sa.func.coalesce(sa.func.max(party_events.c.id), 0)).where(
        party_events.c.party_id == party_id).scalar_subquery()
    found = (await conn.execute(sa.select(mqtt_event_cursors.c.id).where(
        mqtt_event_cursors.c.party_id == party_id))).scalar_one_or_none()
    if found is None:
        await conn.execute(mqtt_event_cursors.insert().values(
            party_id=party_id, last_event_id=newest, next_attempt_at=None, attempts=0))
    elif from_now:
        await conn.execute(mqtt_event_cursors.update().where(mqtt_event_cursors.c.id == found).values(
            last_event_id=newest))


async def claim(engine: AsyncEngine, *, now: datetime, lease_until: datetime, holder: str,
                limit: int) -> list[Cursor]:
    t = mqtt_event_cursors
    due = sa.and_(
        sa.or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now),
        sa.exists().where(mqtt_credentials.c.party_id == t.c.party_id, mqtt_credentials.c.revoked_at.is_(None)),
        sa.exists().where(party_events.c.party_id == t.c.party_id, party_events.c.id > t.c.last_event_id))
    async with engine.begin() as conn:
        ids = row_claims.claimable(t, due, order_by=[t.c.next_attempt_at, t.c.id], limit=limit)
        rows = await row_claims.claim(conn, t, ids, lease_until=lease_until, holder=holder)
    return [Cursor(r.id, r.party_id, int(r.last_event_id), r.attempts) for r in rows]


async def finish(engine: AsyncEngine, cursor: Cursor, *, last_event_id: int, now: datetime) -> bool:
    """Move the cursor and end the claim (due again at once); False if the claim was lost (another
    instance holds the cursor now: its position stands)."""
    t = mqtt_event_cursors
    async with engine.begin() as conn:
        result = await conn.execute(t.update().where(t.c.id == cursor.id, t.c.attempts == cursor.attempts).values(
            last_event_id=sa.func.max(t.c.last_event_id, last_event_id) if conn.dialect.name == "sqlite"
            else sa.func.greatest(t.c.last_event_id, last_event_id), next_attempt_at=now, holder=None))
    return bool(result.rowcount)
