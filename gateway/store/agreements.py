"""Agreements and the premises they cover (tables `agreements`, `agreement_premises`), and the one
read that HAN-request acceptance makes of a party's consent at its target premises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.limits import LOAD_CONTROL_DEVICE_TYPES, SLOT_HOLDERS
from gateway.domain.model import AgreementKind, AgreementState, DataMode, Scope, UsageInterval
from gateway.domain.records import Agreement, AgreementPremise, EnergyDataTerms
from gateway.store import events
from gateway.store.cursors import Page, id_cursor
from gateway.store.schema import agreement_premises, agreements, han_devices, premises


class EndedAgreement(NamedTuple):
    """An agreement that is no longer in force, with what says when it ended: `updated_at` when it
    was ended (state not active), else `ends_at`."""

    id: int
    state: str
    updated_at: datetime
    ends_at: datetime | None


def _agreement(row: Any, covered: Sequence[AgreementPremise]) -> Agreement:
    return Agreement(
        id=row.id,
        party_id=row.party_id,
        kind=AgreementKind(row.kind),
        scopes=tuple(Scope(s) for s in row.scopes.split(",") if s),
        customer_email=row.customer_email,
        duration_months=row.duration_months,
        state=AgreementState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        invitation_expires_at=row.invitation_expires_at,
        resend_count=row.resend_count,
        consent_expires_at=row.consent_expires_at,
        accepted_at=row.accepted_at,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        reminders_sent=row.reminders_sent,
        renewal_months=row.renewal_months,
        premises=tuple(covered),
        data=None if row.data_mode is None else EnergyDataTerms(
            DataMode(row.data_mode), UsageInterval(row.data_interval), row.data_from, row.data_to),
        customer_language=row.customer_language,
    )



def _consent_query() -> sa.Select[Any]:
    """Built once: the statement object memoizes its cache key, which SQLAlchemy otherwise
    recomputes for a fresh statement on every request."""
    esi_ids: sa.BindParameter[Any] = sa.bindparam("esi_ids", expanding=True)
    covering = agreements.join(agreement_premises, agreement_premises.c.agreement_id == agreements.c.id)
    mine = sa.select(agreement_premises.c.esi_id, agreements.c.id, agreements.c.kind, agreements.c.scopes,
                     agreements.c.starts_at, agreements.c.ends_at).select_from(covering).where(
        agreements.c.party_id == sa.bindparam("party_id"), agreements.c.state == AgreementState.ACTIVE.value,
        agreement_premises.c.esi_id.in_(esi_ids)).subquery()
    present = sa.and_(han_devices.c.esi_id == premises.c.esi_id,
                      han_devices.c.status.in_([s.value for s in SLOT_HOLDERS]))
    devices = sa.select(sa.func.count()).where(present).scalar_subquery()
    controlled = sa.select(sa.func.count()).where(
        present, sa.func.lower(han_devices.c.device_type).in_(sorted(LOAD_CONTROL_DEVICE_TYPES))).scalar_subquery()
    return sa.select(premises.c.esi_id, premises.c.status, premises.c.se_version, premises.c.enhanced_meter,
                     devices.label("devices"), controlled.label("controlled"),
                     mine.c.id, mine.c.kind, mine.c.scopes, mine.c.starts_at, mine.c.ends_at).select_from(
        premises.outerjoin(mine, mine.c.esi_id == premises.c.esi_id)).where(
        premises.c.esi_id.in_(esi_ids)).order_by(premises.c.esi_id, mine.c.id)


_CONSENT_QUERY = _consent_query()


AgreementEvent = tuple[str, Mapping[str, Any]]
"""An agreement event to record with a change: its type (`agreement.accepted`, …) and the fields
it adds to the agreement's own (`by`, `reason`, …)."""


def _event(agreement: Agreement, event: AgreementEvent, at: datetime) -> events.NewEvent:
    """The event body: the agreement as it is after the change, and the event's own fields."""
    kind, fields = event
    return events.NewEvent(agreement.party_id, kind, events.subject_of_agreement(agreement.id), {
        "agreement_id": agreement.id, "kind": agreement.kind.value, "state": agreement.state.value,
        "esi_ids": [p.esi_id for p in agreement.premises],
        "ends_at": agreement.ends_at.isoformat() if agreement.ends_at else None, **fields,
        "at": at.isoformat()}, at)


class AgreementsStore:
    """Agreements (mixed into `Store`)."""

    engine: AsyncEngine

    # -- agreements ---------------------------------------------------------------------------

    async def create_agreement(
        self,
        *,
        party_id: int,
        kind: AgreementKind,
        scopes: Sequence[Scope],
        customer_email: str,
        duration_months: int,
        covered: Sequence[AgreementPremise],
        consent_token_hash: str,
        invitation_expires_at: datetime,
        now: datetime,
        event: AgreementEvent | None = None,
        data: EnergyDataTerms | None = None,
        customer_language: str = "en",
    ) -> Agreement:
        """A new invited agreement, with its `event` in the same transaction."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    agreements.insert()
                    .values(
                        party_id=party_id,
                        kind=kind.value,
                        scopes=",".join(s.value for s in scopes),
                        customer_email=customer_email,
                        duration_months=duration_months,
                        state=AgreementState.INVITED.value,
                        created_at=now,
                        updated_at=now,
                        invitation_expires_at=invitation_expires_at,
                        consent_expires_at=invitation_expires_at,
                        resend_count=0,
                        consent_token_hash=consent_token_hash,
                        reminders_sent=0,
                        data_mode=data.mode.value if data else None,
                        data_interval=data.interval.value if data else None,
                        data_from=data.period_start if data else None,
                        data_to=data.period_end if data else None,
                        customer_language=customer_language,
                    )
                    .returning(*agreements.c)
                )
            ).one()
            await conn.execute(
                agreement_premises.insert(),
                [
                    {"agreement_id": row.id, "esi_id": p.esi_id, "meter_number": p.meter_number}
                    for p in covered
                ],
            )
            created = _agreement(row, covered)
            if event is not None:
                await events.record_events(conn, [_event(created, event, now)])
        return created

    async def _load_agreements(self, conn: AsyncConnection, rows: Sequence[Any]) -> list[Agreement]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        covered: dict[int, list[AgreementPremise]] = {i: [] for i in ids}
        for p in (
            await conn.execute(
                agreement_premises.select()
                .where(agreement_premises.c.agreement_id.in_(ids))
                .order_by(agreement_premises.c.esi_id)
            )
        ).all():
            covered[p.agreement_id].append(AgreementPremise(p.esi_id, p.meter_number))
        return [_agreement(r, covered[r.id]) for r in rows]

    async def get_agreement(self, agreement_id: int) -> Agreement | None:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(agreements.select().where(agreements.c.id == agreement_id))
            ).all()
            found = await self._load_agreements(conn, rows)
        return found[0] if found else None

    async def agreement_by_token(self, column: str, token_hash: str) -> Agreement | None:
        """The agreement whose consent or terminate link token hashes to `token_hash`."""
        if column not in ("consent_token_hash", "terminate_token_hash"):
            raise ValueError(column)
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(agreements.select().where(agreements.c[column] == token_hash))
            ).all()
            found = await self._load_agreements(conn, rows)
        return found[0] if found else None

    async def list_agreements(
        self,
        *,
        party_id: int | None = None,
        states: Sequence[AgreementState] | None = None,
        kind: AgreementKind | None = None,
        esi_id: str | None = None,
        ended_since: datetime | None = None,
        customer_email: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Agreement]:
        """Agreements by filter; `ended_since` hides agreements that ended before it;
        `customer_email` matches the invited address whatever its case."""
        query = agreements.select().where(agreements.c.id > id_cursor(cursor))
        if customer_email is not None:
            query = query.where(sa.func.lower(agreements.c.customer_email) == customer_email.lower())
        if party_id is not None:
            query = query.where(agreements.c.party_id == party_id)
        if states:
            query = query.where(agreements.c.state.in_([s.value for s in states]))
        if kind is not None:
            query = query.where(agreements.c.kind == kind.value)
        if esi_id is not None:
            query = query.where(
                agreements.c.id.in_(
                    sa.select(agreement_premises.c.agreement_id).where(
                        agreement_premises.c.esi_id == esi_id
                    )
                )
            )
        if ended_since is not None:
            query = query.where(
                sa.or_(agreements.c.ended_at.is_(None), agreements.c.ended_at >= ended_since)
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(agreements.c.id).limit(limit))).all()
            items = await self._load_agreements(conn, rows)
        return Page(items, str(items[-1].id) if len(items) == limit else None)

    async def consent_at_premises(self, party_id: int, esi_ids: Sequence[str]) -> list[Any]:
        """One round trip for what acceptance of a HAN request needs at each of `esi_ids` that is a
        premise: one row per (premise, active agreement of the party covering it), or one row with
        NULL agreement columns when none does, ordered by ESI ID and agreement id. Columns:
        esi_id, status, se_version, enhanced_meter, devices (registered, holding a slot),
        controlled (of which load-control device types), and the agreement's id, kind, scopes,
        starts_at, ends_at (its dates are for the caller to check against its time)."""
        async with self.engine.connect() as conn:
            return list((await conn.execute(_CONSENT_QUERY, {"party_id": party_id, "esi_ids": list(esi_ids)})).all())

    async def agreements_for_premise(
        self,
        esi_id: str,
        *,
        states: Sequence[AgreementState],
        party_id: int | None = None,
    ) -> list[Agreement]:
        page = await self.list_agreements(
            party_id=party_id, states=states, esi_id=esi_id, limit=10_000
        )
        return page.items

    async def update_agreement(
        self,
        agreement_id: int,
        *,
        expect_states: Sequence[AgreementState],
        expect: Mapping[str, Any] | None = None,
        event: AgreementEvent | None = None,
        **values: Any,
    ) -> Agreement | None:
        """Compare-and-set: change the agreement only if it is still in one of `expect_states`.

        Returns the updated agreement, or None if another request changed its state first — so
        two clicks on the same consent link cannot both win. `expect` adds column == value
        conditions (e.g. the consent link must still be the current one: renewals keep the state).
        `event` is recorded with the change, in its transaction, only when the change is made
        (at `updated_at`): one event per change, whichever instance or click wins.
        """
        query = agreements.update().where(
            agreements.c.id == agreement_id,
            agreements.c.state.in_([s.value for s in expect_states]),
        )
        for column, value in (expect or {}).items():
            query = query.where(agreements.c[column] == value)
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(**values))
            if not result.rowcount:
                return None
            rows = (
                await conn.execute(agreements.select().where(agreements.c.id == agreement_id))
            ).all()
            updated = (await self._load_agreements(conn, rows))[0]
            if event is not None:
                await events.record_events(conn, [_event(updated, event, updated.updated_at)])
            return updated

    async def agreements_due(
        self, *, state: AgreementState, column: str, before: datetime
    ) -> list[Agreement]:
        """Agreements in `state` whose `column` time is before `before` (lifecycle timers)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    agreements.select()
                    .where(agreements.c.state == state.value, agreements.c[column] < before)
                    .order_by(agreements.c.id)
                )
            ).all()
            return await self._load_agreements(conn, rows)

    async def agreements_ended(self, *, now: datetime, since: datetime | None = None) -> list[EndedAgreement]:
        """Agreements not in force at `now` (ended by someone, or past their end time): all of them,
        or (`since`) those whose `updated_at` or end time moved after `since` (both indexed), so a
        sweep repeated every second reads only what ended since the previous one."""
        ended = [agreements.c.state != AgreementState.ACTIVE.value, agreements.c.ends_at <= now]
        query = sa.select(agreements.c.id, agreements.c.state, agreements.c.updated_at, agreements.c.ends_at)
        if since is None:
            query = query.where(sa.or_(*ended))
        else:
            query = query.where(sa.or_(sa.and_(agreements.c.updated_at > since, ended[0]),
                                       sa.and_(agreements.c.ends_at > since, ended[1])))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [EndedAgreement(int(i), state, updated_at, ends_at) for i, state, updated_at, ends_at in rows]
