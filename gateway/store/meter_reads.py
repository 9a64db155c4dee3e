"""On-demand meter reads (tables `meter_reads`, `meter_read_quota`, migration 0024).

A read is stored pending, with the TDSP's daily count taken in the same transaction
(`submit_meter_read`): the count is one upsert that increments only below the cap, so instances
submitting at once never pass it between them, and a refused read stores nothing (the transaction
is rolled back). The worker claims due reads with a lease (gateway/store/row_claims.py: `FOR UPDATE
SKIP LOCKED` on PostgreSQL), so of several instances one reads the meter, and a dead instance's
claim is taken over once its lease is over; the outcome is recorded only while the claim is still
the claimer's (`attempts` is the fencing token), in the transaction that records its event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import row_claims
from gateway.store.events import NewEvent, record_events
from gateway.store.schema import meter_read_quota, meter_reads

PENDING, COMPLETED, FAILED = "pending", "completed", "failed"


@dataclass(frozen=True)
class StoredMeterRead:
    id: int
    party_id: int | None
    agreement_id: int | None
    esi_id: str
    tdsp: str
    state: str
    reason: str | None
    detail: str | None
    requested_at: datetime
    expires_at: datetime
    attempts: int
    finished_at: datetime | None
    read_at: datetime | None
    delivered_wh: int | None
    received_wh: int | None
    demand_w: int | None


class QuotaExhausted(Exception):
    """The TDSP's reads of the day are used up (nothing was stored)."""

    def __init__(self, tdsp: str, day: str, limit: int) -> None:
        self.tdsp, self.day, self.limit = tdsp, day, limit
        super().__init__(f"on-demand reads of TDSP {tdsp!r} on {day}: the limit of {limit} a day is reached")


def _row(r: Any) -> StoredMeterRead:
    return StoredMeterRead(r.id, r.party_id, r.agreement_id, r.esi_id, r.tdsp, r.state, r.reason, r.detail,
                           r.requested_at, r.expires_at, r.attempts, r.finished_at, r.read_at, r.delivered_wh,
                           r.received_wh, r.demand_w)


async def _take_quota(conn: AsyncConnection, tdsp: str, day: str, limit: int) -> int | None:
    """Count one read of `tdsp` on `day` if fewer than `limit` are counted: the count now, or None
    (the cap is reached). One statement: the row's lock (PostgreSQL) or the one writer (SQLite)
    serializes instances counting at once."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(meter_read_quota).values(tdsp=tdsp, day=day, used=1)
    stmt = stmt.on_conflict_do_update(index_elements=["tdsp", "day"],
                                      set_={"used": meter_read_quota.c.used + 1},
                                      where=meter_read_quota.c.used < limit)
    used = (await conn.execute(stmt.returning(meter_read_quota.c.used))).scalar_one_or_none()
    return None if used is None else int(used)


class MeterReadStore:
    """On-demand meter reads (mixed into `Store`)."""

    engine: AsyncEngine

    async def submit_meter_read(self, *, party_id: int | None, agreement_id: int | None, esi_id: str, tdsp: str,
                                day: str, limit: int, now: datetime, expires_at: datetime) -> StoredMeterRead:
        """Store a pending read, due now, counted against the TDSP's `day`; `QuotaExhausted`
        (and nothing stored) when `limit` reads of the TDSP are counted that day already."""
        async with self.engine.begin() as conn:
            if await _take_quota(conn, tdsp, day, limit) is None:
                raise QuotaExhausted(tdsp, day, limit)
            row = (await conn.execute(meter_reads.insert().values(
                party_id=party_id, agreement_id=agreement_id, esi_id=esi_id, tdsp=tdsp, state=PENDING,
                requested_at=now, expires_at=expires_at, next_attempt_at=now, attempts=0,
            ).returning(*meter_reads.c))).one()
        return _row(row)

    async def get_meter_read(self, read_id: int) -> StoredMeterRead | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(meter_reads.select().where(meter_reads.c.id == read_id))).first()
        return None if row is None else _row(row)

    async def meter_reads_used(self, tdsp: str, day: str) -> int:
        async with self.engine.connect() as conn:
            used = (await conn.execute(sa.select(meter_read_quota.c.used).where(
                meter_read_quota.c.tdsp == tdsp, meter_read_quota.c.day == day))).scalar_one_or_none()
        return int(used or 0)

    async def claim_meter_reads(self, now: datetime, lease: timedelta, limit: int = 10) -> list[StoredMeterRead]:
        """Claim up to `limit` due pending reads for one attempt each, until `now + lease`."""
        due = sa.and_(meter_reads.c.next_attempt_at.is_not(None), meter_reads.c.next_attempt_at <= now)
        async with self.engine.begin() as conn:
            rows = await row_claims.claim(conn, meter_reads, row_claims.claimable(
                meter_reads, due, order_by=[meter_reads.c.next_attempt_at, meter_reads.c.id], limit=limit),
                lease_until=now + lease)
        return [_row(r) for r in rows]

    async def finish_meter_read(self, claimed: StoredMeterRead, values: dict[str, Any],
                                events: Sequence[NewEvent]) -> bool:
        """Record the claimed read's outcome (`values`: state, reason, the register…) and its events
        in one transaction, only while the claim is still this one's; False: too late, dropped."""
        async with self.engine.begin() as conn:
            done = await row_claims.finish(conn, meter_reads, claimed.id, claimed.attempts,
                                           next_attempt_at=None, **values)
            if done:
                await record_events(conn, events)
            return done

    async def release_meter_reads(self, claims: dict[int, int], now: datetime) -> int:
        """A graceful stop hands back the reads it claimed and did not finish: due again now."""
        async with self.engine.begin() as conn:
            return await row_claims.release(conn, meter_reads, claims, now, meter_reads.c.state == PENDING)
