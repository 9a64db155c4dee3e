"""Premises and their HAN devices (tables `premises`, `han_devices`): what the gateway serves,
and which premises a principal may see."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.model import AgreementKind, AgreementState, DeviceStatus, PremiseClass, Role, Scope
from gateway.domain.records import HanDevice, Premise, Principal
from gateway.store.cursors import Page, id_cursor
from gateway.store.fanout import in_scope_query
from gateway.store.schema import agreement_premises, agreements, han_devices, premises, technician_assignments


def _premise(row: Any) -> Premise:
    return Premise(
        esi_id=row.esi_id,
        tdsp=row.tdsp,
        meter_number=row.meter_number,
        customer_email=row.customer_email,
        rep=row.rep,
        premise_class=PremiseClass(row.premise_class),
        se_version=row.se_version,
        enhanced_meter=bool(row.enhanced_meter),
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _device(row: Any) -> HanDevice:
    return HanDevice(
        id=row.id,
        esi_id=row.esi_id,
        eui64=row.eui64,
        device_type=row.device_type,
        status=DeviceStatus(row.status),
        party_id=row.party_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )



class PremisesStore:
    """Premises and HAN devices (mixed into `Store`)."""

    engine: AsyncEngine

    # -- premises -----------------------------------------------------------------------------

    async def upsert_premise(self, values: dict[str, Any], now: datetime) -> str:
        """Insert or update one premise by ESI ID; returns "created", "updated" or "unchanged"."""
        async with self.engine.begin() as conn:
            return await self._upsert_premise(conn, values, now)

    async def upsert_premises(self, rows: Iterable[dict[str, Any]], now: datetime) -> list[str]:
        """Upsert many premises (distinct ESI IDs) in one transaction: one read of the existing
        rows, one multi-row insert, an update per changed row. Outcomes in input order."""
        rows = list(rows)
        if not rows:
            return []
        async with self.engine.begin() as conn:
            existing = {r.esi_id: r for r in (await conn.execute(
                premises.select().where(premises.c.esi_id.in_([v["esi_id"] for v in rows]))
            )).all()}
            new = [{**v, "status": "active", "created_at": now, "updated_at": now}
                   for v in rows if v["esi_id"] not in existing]
            if new:
                await conn.execute(premises.insert(), new)
            outcomes = []
            for values in rows:
                old = existing.get(values["esi_id"])
                if old is None:
                    outcomes.append("created")
                    continue
                changed = {k: v for k, v in values.items() if getattr(old, k) != v}
                if old.status != "active":
                    changed["status"] = "active"
                if not changed:
                    outcomes.append("unchanged")
                    continue
                await conn.execute(premises.update()
                                   .where(premises.c.esi_id == values["esi_id"])
                                   .values(**changed, updated_at=now))
                outcomes.append("updated")
        return outcomes

    @staticmethod
    async def _upsert_premise(conn: AsyncConnection, values: dict[str, Any], now: datetime) -> str:
        existing = (
            await conn.execute(premises.select().where(premises.c.esi_id == values["esi_id"]))
        ).first()
        if existing is None:
            await conn.execute(
                premises.insert().values(
                    **values, status="active", created_at=now, updated_at=now
                )
            )
            return "created"
        changed = {
            k: v for k, v in values.items() if getattr(existing, k) != v
        }
        if existing.status != "active":
            changed["status"] = "active"
        if not changed:
            return "unchanged"
        await conn.execute(
            premises.update()
            .where(premises.c.esi_id == values["esi_id"])
            .values(**changed, updated_at=now)
        )
        return "updated"

    async def get_premise(self, esi_id: str) -> Premise | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(premises.select().where(premises.c.esi_id == esi_id))).first()
        return None if row is None else _premise(row)

    async def get_premises(self, esi_ids: Sequence[str]) -> dict[str, Premise]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(premises.select().where(premises.c.esi_id.in_(list(esi_ids))))
            ).all()
        return {r.esi_id: _premise(r) for r in rows}

    async def list_premises(
        self,
        *,
        visible_to: Principal,
        now: datetime,
        tdsp: str | None = None,
        rep: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Premise]:
        """Premises the principal may see: all (operator), assigned (technician), covered by the
        party's agreements in force (third party)."""
        query = premises.select().where(premises.c.esi_id > (cursor or ""))
        if visible_to.role is Role.THIRD_PARTY:
            covered = (
                sa.select(agreement_premises.c.esi_id)
                .join(agreements, agreements.c.id == agreement_premises.c.agreement_id)
                .where(
                    agreements.c.party_id == visible_to.party_id,
                    agreements.c.state == AgreementState.ACTIVE.value,
                    agreements.c.starts_at <= now,
                    agreements.c.ends_at > now,
                )
            )
            query = query.where(premises.c.esi_id.in_(covered), premises.c.status == "active")
        elif visible_to.role is Role.FIELD_TECHNICIAN:
            assigned = sa.select(technician_assignments.c.esi_id).where(
                technician_assignments.c.technician_id == visible_to.technician_id
            )
            query = query.where(premises.c.esi_id.in_(assigned), premises.c.status == "active")
        if tdsp is not None:
            query = query.where(premises.c.tdsp == tdsp)
        if rep is not None:
            query = query.where(premises.c.rep == rep)
        if status is not None:
            query = query.where(premises.c.status == status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(premises.c.esi_id).limit(limit))).all()
        items = [_premise(r) for r in rows]
        return Page(items, items[-1].esi_id if len(items) == limit else None)

    async def premises_of_customer(self, email: str) -> list[Premise]:
        """Active premises whose customer contact on record is `email` (any case)."""
        query = premises.select().where(sa.func.lower(premises.c.customer_email) == email.lower(),
                                        premises.c.status == "active").order_by(premises.c.esi_id)
        async with self.engine.connect() as conn:
            return [_premise(r) for r in (await conn.execute(query)).all()]

    async def customer_email_known(self, email: str) -> bool:
        """Whether `email` is a premise's customer contact or an agreement's invited address."""
        address = email.lower()
        query = sa.select(sa.or_(
            sa.exists().where(sa.func.lower(premises.c.customer_email) == address),
            sa.exists().where(sa.func.lower(agreements.c.customer_email) == address)))
        async with self.engine.connect() as conn:
            return bool((await conn.execute(query)).scalar())

    async def premises_in_scope(
        self,
        *,
        party_id: int,
        kind: AgreementKind,
        scope: Scope | None,
        now: datetime,
        after: str = "",
        limit: int = 1000,
    ) -> list[tuple[str, int]]:
        """(ESI ID, agreement id) of active premises where the party has an agreement of `kind`
        (and `scope`) in force at `now`, ordered by ESI ID after `after`: one keyset page.

        The bulk counterpart of `authorize` for fan-out (one request to many premises): the same
        rules as one SQL query, so the caller never holds every premise in memory.
        """
        query = in_scope_query(party_id=party_id, kind=kind, scope=scope, now=now, after=after).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(r[0], r[1]) for r in rows]

    async def set_premise_status(
        self, esi_id: str, status: str, now: datetime, *, clear_customer: bool = False
    ) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if clear_customer:
            values["customer_email"] = None
        async with self.engine.begin() as conn:
            await conn.execute(
                premises.update().where(premises.c.esi_id == esi_id).values(**values)
            )

    # -- HAN devices --------------------------------------------------------------------------

    async def add_device(
        self,
        *,
        esi_id: str,
        eui64: str,
        device_type: str,
        party_id: int | None,
        now: datetime,
    ) -> HanDevice | None:
        """Store a device as provision requested; None if the premise already has that EUI-64."""
        async with self.engine.begin() as conn:
            exists = (
                await conn.execute(
                    han_devices.select().where(
                        han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64
                    )
                )
            ).first()
            if exists is not None:
                return None
            row = (
                await conn.execute(
                    han_devices.insert()
                    .values(
                        esi_id=esi_id,
                        eui64=eui64,
                        device_type=device_type,
                        status=DeviceStatus.PROVISION_REQUESTED.value,
                        party_id=party_id,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*han_devices.c)
                )
            ).one()
        return _device(row)

    async def set_device_status(
        self, esi_id: str, eui64: str, status: DeviceStatus, now: datetime
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                han_devices.update()
                .where(han_devices.c.esi_id == esi_id, han_devices.c.eui64 == eui64)
                .values(status=status.value, updated_at=now)
            )
        return bool(result.rowcount)

    async def list_devices(
        self, esi_id: str, *, status: DeviceStatus | None = None, cursor: str | None = None,
        limit: int = 100, provisioned_by: int | None = None,
    ) -> Page[HanDevice]:
        """The premise's devices; with `provisioned_by`, only those that party provisioned."""
        query = han_devices.select().where(
            han_devices.c.esi_id == esi_id, han_devices.c.id > id_cursor(cursor)
        )
        if provisioned_by is not None:
            query = query.where(han_devices.c.party_id == provisioned_by)
        if status is not None:
            query = query.where(han_devices.c.status == status.value)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(han_devices.c.id).limit(limit))).all()
        items = [_device(r) for r in rows]
        return Page(items, str(items[-1].id) if len(items) == limit else None)
