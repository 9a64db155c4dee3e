"""The audit log (table `audit_log`): append-only, every authorization decision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.model import Role
from gateway.domain.records import AuditEntry, Principal
from gateway.store.bulk import insert_many
from gateway.store.cursors import Page, id_cursor
from gateway.store.schema import audit_log


def _audit(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        principal_role=Role(row.principal_role),
        principal_id=row.principal_id,
        action=row.action,
        esi_id=row.esi_id,
        device_eui64=row.device_eui64,
        agreement_id=row.agreement_id,
        allowed=bool(row.allowed),
        reason=row.reason,
    )



class AuditStore:
    """The audit log (mixed into `Store`)."""

    engine: AsyncEngine

    # -- audit log (append-only) --------------------------------------------------------------

    async def append_audit(
        self,
        *,
        at: datetime,
        principal: Principal,
        action: str,
        esi_id: str,
        device_eui64: str | None,
        agreement_id: int | None,
        allowed: bool,
        reason: str,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                audit_log.insert().values(
                    at=at,
                    principal_role=principal.role.value,
                    principal_id=principal.subject_id,
                    action=action,
                    esi_id=esi_id,
                    device_eui64=device_eui64,
                    agreement_id=agreement_id,
                    allowed=allowed,
                    reason=reason,
                )
            )

    async def list_audit(
        self,
        *,
        principal_role: Role | None = None,
        principal_id: int | None = None,
        esi_id: str | None = None,
        action: str | None = None,
        allowed: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[AuditEntry]:
        query = audit_log.select().where(audit_log.c.id > id_cursor(cursor))
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if allowed is not None:
            query = query.where(audit_log.c.allowed == allowed)
        if principal_role is not None:
            query = query.where(audit_log.c.principal_role == principal_role.value)
        if principal_id is not None:
            query = query.where(audit_log.c.principal_id == principal_id)
        if esi_id is not None:
            query = query.where(audit_log.c.esi_id == esi_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(audit_log.c.id).limit(limit))).all()
        items = [_audit(r) for r in rows]
        return Page(items, str(items[-1].id) if len(items) == limit else None)


async def write_decisions(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Audit rows (dicts of `audit_log` columns) in one executemany, in the caller's transaction:
    the decisions commit with what they decided (a request's acceptance)."""
    await insert_many(conn, audit_log, rows)
