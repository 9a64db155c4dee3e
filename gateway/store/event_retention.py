"""The event log's retention: a sweep deletes third parties' events older than
`[events] retention_days`, in bounded batches, under a lease so one instance at a time sweeps.

- Kept whatever their age: events a webhook row still points at (`webhook_outbox.event_id`, not
  delivered: queued or a dead letter) — the sender and "redeliver" read the body from the log.
- Per party, the highest id deleted is its horizon (`party_event_horizons`): `GET /v1/events?after=N`
  with N below it would silently skip events the client never read, so it is answered 410
  `events_expired` naming the horizon instead (gateway/api/routes_events.py).
- The lease (`job_leases`, name `event_retention`): taken with one compare-and-set statement,
  renewed between batches; an instance that dies holding it blocks the sweep only until the lease
  is over. A sweep that lost its lease stops after the batch it is in (each batch is its own
  transaction, so two overlapping sweeps would at worst delete the same old rows twice: no harm).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.schema import job_leases, party_event_horizons, party_events, webhook_outbox

JOB = "event_retention"


@dataclass(frozen=True)
class SweepReport:
    deleted: int
    batches: int
    leased: bool  # False: another instance holds the lease; nothing was done


async def take_lease(engine: AsyncEngine, name: str, holder: str, now: datetime, lease: timedelta) -> bool:
    """Hold job `name` until now + lease, if it is free, over, or already ours."""
    until = now + lease
    async with engine.begin() as conn:
        taken = await conn.execute(job_leases.update().where(
            job_leases.c.name == name,
            sa.or_(job_leases.c.lease_until <= now, job_leases.c.holder == holder)).values(
            holder=holder, lease_until=until))
        if taken.rowcount:
            return True
        exists = (await conn.execute(sa.select(job_leases.c.name).where(job_leases.c.name == name))).first()
        if exists is not None:
            return False
    try:  # the job's first run anywhere: make its row (a concurrent insert of another instance wins)
        async with engine.begin() as conn:
            await conn.execute(job_leases.insert().values(name=name, holder=holder, lease_until=until))
        return True
    except sa.exc.IntegrityError:
        return False


async def release_lease(engine: AsyncEngine, name: str, holder: str, now: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(job_leases.update().where(job_leases.c.name == name, job_leases.c.holder == holder)
                           .values(lease_until=now))


def _waiting_in_a_webhook_queue() -> sa.Exists:
    return sa.exists().where(webhook_outbox.c.event_id == party_events.c.id, webhook_outbox.c.delivered_at.is_(None))


async def _delete_batch(conn: AsyncConnection, cutoff: datetime, batch: int) -> int:
    ids = [r.id for r in (await conn.execute(
        sa.select(party_events.c.id).where(party_events.c.created_at < cutoff, ~_waiting_in_a_webhook_queue())
        .order_by(party_events.c.id).limit(batch))).all()]
    if not ids:
        return 0
    tops = (await conn.execute(sa.select(party_events.c.party_id, sa.func.max(party_events.c.id).label("top"))
                               .where(party_events.c.id.in_(ids)).group_by(party_events.c.party_id))).all()
    for party_id, top in tops:
        # Horizons only grow: a batch's max per party, kept if larger than what is there.
        moved = await conn.execute(party_event_horizons.update().where(
            party_event_horizons.c.party_id == party_id, party_event_horizons.c.swept_through_id < top)
            .values(swept_through_id=top))
        if not moved.rowcount:
            there = (await conn.execute(sa.select(party_event_horizons.c.party_id).where(
                party_event_horizons.c.party_id == party_id))).first()
            if there is None:
                await conn.execute(party_event_horizons.insert().values(party_id=party_id, swept_through_id=top))
    deleted = await conn.execute(party_events.delete().where(party_events.c.id.in_(ids)))
    return int(deleted.rowcount or 0)


async def sweep(engine: AsyncEngine, *, now: datetime, retention: timedelta, holder: str, batch_size: int,
                max_batches: int, lease: timedelta = timedelta(minutes=5)) -> SweepReport:
    """One pass: up to `max_batches` deletions of up to `batch_size` events older than now - retention."""
    if not await take_lease(engine, JOB, holder, now, lease):
        return SweepReport(0, 0, leased=False)
    cutoff = now - retention
    deleted = batches = 0
    try:
        while batches < max_batches:
            async with engine.begin() as conn:
                n = await _delete_batch(conn, cutoff, batch_size)
            batches += 1
            deleted += n
            if n < batch_size or not await take_lease(engine, JOB, holder, now, lease):
                break
    finally:
        await release_lease(engine, JOB, holder, now)
    return SweepReport(deleted, batches, leased=True)


async def horizon(engine: AsyncEngine, party_id: int) -> int:
    """The party's highest swept event id (0: none swept)."""
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(party_event_horizons.c.swept_through_id).where(
            party_event_horizons.c.party_id == party_id))).scalar()
    return int(found or 0)
