"""The store: every read and write of the gateway's state, async, for SQLite and PostgreSQL.

One class over SQLAlchemy Core. The SQLite back-end (aiosqlite) runs sqlite3 in a worker thread and
PostgreSQL (asyncpg) is natively async, so no call here blocks the event loop.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.domain.model import (
    AgreementKind,
    AgreementState,
    DeviceStatus,
    PartyStatus,
    PremiseClass,
    Role,
    Scope,
)
from gateway.domain.records import (
    Agreement,
    AgreementPremise,
    AuditEntry,
    Credential,
    HanDevice,
    Party,
    Premise,
    Principal,
    Technician,
)
from gateway.store import migrate, sqlite_driver
from gateway.store.cursors import id_cursor
from gateway.store.fanout import in_scope_query
from gateway.store.schema import (
    agreement_premises,
    agreements,
    audit_log,
    credentials,
    han_devices,
    idempotency_keys,
    mail_outbox,
    parties,
    premises,
    technician_assignments,
    technicians,
)
from gateway.store.sqlite_writes import serialize_writes

TOKEN_PREFIX = "hgw_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A bearer or link token: 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class OutboxMail:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int


def _party(row: Any) -> Party:
    return Party(
        id=row.id,
        name=row.name,
        duns=row.duns,
        contact_email=row.contact_email,
        status=PartyStatus(row.status),
        created_at=row.created_at,
    )


def _credential(row: Any) -> Credential:
    return Credential(
        id=row.id,
        role=Role(row.role),
        party_id=row.party_id,
        technician_id=row.technician_id,
        label=row.label,
        token_prefix=row.token_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


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
    )


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


_int_cursor = id_cursor


class TextSealer(Protocol):
    def seal_text(self, text: str) -> str: ...
    def open_text(self, stored: str) -> str: ...


class _Outbox:
    """Mixin: the mail outbox (store first, send after, retry until sent or given up)."""

    engine: AsyncEngine

    # Seals queued mail bodies (they carry single-use consent links) with the operator's key; set
    # by the app when a key is configured (gateway/device_keys.py). None: bodies stored as they are.
    mail_sealer: TextSealer | None = None
    # Seals webhook signing secrets the same way (they must be read back to sign).
    secret_sealer: TextSealer | None = None

    async def enqueue_mail(self, *, recipient: str, subject: str, body: str,
                           now: datetime, first_retry: timedelta) -> OutboxMail:
        stored = self.mail_sealer.seal_text(body) if self.mail_sealer is not None else body
        async with self.engine.begin() as conn:
            row = (await conn.execute(
                mail_outbox.insert().values(recipient=recipient, subject=subject, body=stored,
                                            created_at=now, attempts=0,
                                            next_attempt_at=now + first_retry)
                .returning(mail_outbox.c.id))).one()
        return OutboxMail(row.id, recipient, subject, body, 0)

    async def mail_due(self, now: datetime, limit: int = 100) -> list[OutboxMail]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                mail_outbox.select().where(mail_outbox.c.next_attempt_at <= now)
                .order_by(mail_outbox.c.id).limit(limit))).all()
        sealer = self.mail_sealer
        return [OutboxMail(r.id, r.recipient, r.subject, sealer.open_text(r.body) if sealer else r.body, r.attempts)
                for r in rows]

    async def mail_sent(self, mail_id: int, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(mail_outbox.update().where(mail_outbox.c.id == mail_id).values(
                sent_at=now, next_attempt_at=None, body="", attempts=mail_outbox.c.attempts + 1))

    async def mail_failed(self, mail_id: int, error: str, retry_at: datetime | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(mail_outbox.update().where(mail_outbox.c.id == mail_id).values(
                last_error=error[:500], next_attempt_at=retry_at,
                attempts=mail_outbox.c.attempts + 1))

    async def mail_counts(self) -> dict[str, int]:
        """pending, sent and dead (given up) mails."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                sa.func.count().filter(mail_outbox.c.next_attempt_at.is_not(None)),
                sa.func.count().filter(mail_outbox.c.sent_at.is_not(None)),
                sa.func.count().filter(mail_outbox.c.sent_at.is_(None),
                                       mail_outbox.c.next_attempt_at.is_(None)),
            ))).one()
        return {"pending": rows[0], "sent": rows[1], "dead": rows[2]}


# Every API call runs this: built once, so its cache key is memoized (not recomputed per call).
_PRINCIPAL_QUERY = (
    sa.select(credentials, parties.c.status.label("party_status"))
    .select_from(credentials.outerjoin(parties, credentials.c.party_id == parties.c.id))
    .where(credentials.c.token_hash == sa.bindparam("token_hash"))
)


class Store(_Outbox):
    """All persistent state. Create with `open_store(url)`; close with `await store.close()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = serialize_writes(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self, revision: str = "head") -> None:
        await migrate.upgrade(self.engine, revision)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        return await migrate.current_revision(self.engine)

    # -- parties ------------------------------------------------------------------------------

    async def create_party(
        self, *, name: str, duns: str, contact_email: str, now: datetime
    ) -> Party:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                parties.insert()
                .values(
                    name=name,
                    duns=duns,
                    contact_email=contact_email,
                    status=PartyStatus.ACTIVE.value,
                    created_at=now,
                )
                .returning(*parties.c)
            )
            return _party(result.one())

    async def get_party(self, party_id: int) -> Party | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(parties.select().where(parties.c.id == party_id))).first()
        return None if row is None else _party(row)

    async def get_party_by_duns(self, duns: str) -> Party | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(parties.select().where(parties.c.duns == duns))).first()
        return None if row is None else _party(row)

    async def list_parties(
        self, *, status: PartyStatus | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[Party]:
        query = parties.select().where(parties.c.id > _int_cursor(cursor))
        if status is not None:
            query = query.where(parties.c.status == status.value)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(parties.c.id).limit(limit))).all()
        items = [_party(r) for r in rows]
        return Page(items, str(items[-1].id) if len(items) == limit else None)

    async def set_party_status(self, party_id: int, status: PartyStatus) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                parties.update().where(parties.c.id == party_id).values(status=status.value)
            )

    # -- technicians --------------------------------------------------------------------------

    async def create_technician(self, *, name: str, email: str, now: datetime) -> Technician:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    technicians.insert()
                    .values(name=name, email=email, created_at=now)
                    .returning(*technicians.c)
                )
            ).one()
        return Technician(row.id, row.name, row.email, row.created_at)

    async def get_technician(self, technician_id: int) -> Technician | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(technicians.select().where(technicians.c.id == technician_id))
            ).first()
        return None if row is None else Technician(row.id, row.name, row.email, row.created_at)

    async def assign_technician(self, technician_id: int, esi_id: str) -> None:
        async with self.engine.begin() as conn:
            exists = (
                await conn.execute(
                    technician_assignments.select().where(
                        technician_assignments.c.technician_id == technician_id,
                        technician_assignments.c.esi_id == esi_id,
                    )
                )
            ).first()
            if exists is None:
                await conn.execute(
                    technician_assignments.insert().values(
                        technician_id=technician_id, esi_id=esi_id
                    )
                )

    async def technician_assigned(self, technician_id: int, esi_id: str) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    technician_assignments.select().where(
                        technician_assignments.c.technician_id == technician_id,
                        technician_assignments.c.esi_id == esi_id,
                    )
                )
            ).first()
        return row is not None

    # -- credentials --------------------------------------------------------------------------

    async def issue_credential(
        self,
        *,
        role: Role,
        label: str,
        now: datetime,
        party_id: int | None = None,
        technician_id: int | None = None,
    ) -> tuple[Credential, str]:
        """A new bearer token; the token itself is returned once and never stored."""
        if (role is Role.THIRD_PARTY) != (party_id is not None):
            raise ValueError("a third-party credential needs party_id, and only it")
        if (role is Role.FIELD_TECHNICIAN) != (technician_id is not None):
            raise ValueError("a field-technician credential needs technician_id, and only it")
        token = new_token()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    credentials.insert()
                    .values(
                        role=role.value,
                        party_id=party_id,
                        technician_id=technician_id,
                        label=label,
                        token_hash=hash_token(token),
                        token_prefix=token[: len(TOKEN_PREFIX) + 4],
                        created_at=now,
                    )
                    .returning(*credentials.c)
                )
            ).one()
        return _credential(row), token

    async def get_credential(self, credential_id: int) -> Credential | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(credentials.select().where(credentials.c.id == credential_id))
            ).first()
        return None if row is None else _credential(row)

    async def list_credentials(
        self,
        *,
        party_id: int | None = None,
        role: Role | None = None,
        revoked: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Credential]:
        query = credentials.select().where(credentials.c.id > _int_cursor(cursor))
        if revoked is not None:
            query = query.where(credentials.c.revoked_at.is_not(None) if revoked
                                else credentials.c.revoked_at.is_(None))
        if party_id is not None:
            query = query.where(credentials.c.party_id == party_id)
        if role is not None:
            query = query.where(credentials.c.role == role.value)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(credentials.c.id).limit(limit))).all()
        items = [_credential(r) for r in rows]
        return Page(items, str(items[-1].id) if len(items) == limit else None)

    async def revoke_credential(self, credential_id: int, now: datetime) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                credentials.update()
                .where(credentials.c.id == credential_id, credentials.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(result.rowcount)

    async def principal_for_token(self, token: str) -> Principal | None:
        """The principal a live (unrevoked) bearer token stands for, else None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(_PRINCIPAL_QUERY, {"token_hash": hash_token(token)})).first()
        if row is None or row.revoked_at is not None:
            return None
        if row.party_status is not None and row.party_status != PartyStatus.ACTIVE.value:
            return None
        return Principal(
            role=Role(row.role),
            credential_id=row.id,
            party_id=row.party_id,
            technician_id=row.technician_id,
        )

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
            han_devices.c.esi_id == esi_id, han_devices.c.id > _int_cursor(cursor)
        )
        if provisioned_by is not None:
            query = query.where(han_devices.c.party_id == provisioned_by)
        if status is not None:
            query = query.where(han_devices.c.status == status.value)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(han_devices.c.id).limit(limit))).all()
        items = [_device(r) for r in rows]
        return Page(items, str(items[-1].id) if len(items) == limit else None)

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
    ) -> Agreement:
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
        return _agreement(row, covered)

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
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Agreement]:
        """Agreements by filter; `ended_since` hides agreements that ended before it."""
        query = agreements.select().where(agreements.c.id > _int_cursor(cursor))
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
        **values: Any,
    ) -> Agreement | None:
        """Compare-and-set: change the agreement only if it is still in one of `expect_states`.

        Returns the updated agreement, or None if another request changed its state first — so
        two clicks on the same consent link cannot both win. `expect` adds column == value
        conditions (e.g. the consent link must still be the current one: renewals keep the state).
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
            return (await self._load_agreements(conn, rows))[0]

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
        query = audit_log.select().where(audit_log.c.id > _int_cursor(cursor))
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

    # -- idempotency keys ---------------------------------------------------------------------

    async def purge_idempotent(self, before: datetime) -> int:
        """Forget stored responses older than `before` (keys are for retries, not archives)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.created_at < before))
        return int(result.rowcount or 0)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    parsed = sa.engine.make_url(url)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() != "sqlite" or parsed.database not in (None, "", ":memory:"):
        # The default pool (5, overflow 10) opened and closed a connection for every request
        # beyond 5 concurrent ones: on SQLite a thread with its pragmas, on PostgreSQL a backend
        # process. Connections are opened on demand, up to 20 kept.
        options = {"pool_size": 20, "max_overflow": 20}
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername=f"sqlite+{sqlite_driver.DRIVER}")  # one thread trip per statement
    engine = create_async_engine(parsed, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return serialize_writes(engine)  # units of work; on SQLite one writer at a time


async def open_store(url: str, *, migrate_to: str | None = "head") -> Store:
    """Open the database at `url` (sqlite+aiosqlite:///… or postgresql+asyncpg://…) and migrate."""
    store = Store(make_engine(url))
    if migrate_to is not None:
        await store.migrate(migrate_to)
    return store
