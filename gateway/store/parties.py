"""Parties, field technicians and their credentials (tables `parties`, `technicians`,
`technician_assignments`, `credentials`): who may call the API, and as whom."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.model import PartyStatus, Role
from gateway.domain.records import Credential, Party, Principal, Technician
from gateway.store.cursors import Page, id_cursor
from gateway.store.errors import ConstraintViolation
from gateway.store.schema import credentials, parties, technician_assignments, technicians

TOKEN_PREFIX = "hgw_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A bearer or link token: 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


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


# Every API call runs this: built once, so its cache key is memoized (not recomputed per call).
_PRINCIPAL_QUERY = (
    sa.select(credentials, parties.c.status.label("party_status"))
    .select_from(credentials.outerjoin(parties, credentials.c.party_id == parties.c.id))
    .where(credentials.c.token_hash == sa.bindparam("token_hash"))
)



class PartiesStore:
    """Parties, technicians and credentials (mixed into `Store`)."""

    engine: AsyncEngine

    # -- parties ------------------------------------------------------------------------------

    async def create_party(
        self, *, name: str, duns: str, contact_email: str, now: datetime
    ) -> Party:
        """ConstraintViolation when the DUNS number is taken (by a party created meanwhile)."""
        try:
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
        except sa.exc.IntegrityError as exc:
            raise ConstraintViolation(f"a party with DUNS {duns} exists") from exc

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
        query = parties.select().where(parties.c.id > id_cursor(cursor))
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
        query = credentials.select().where(credentials.c.id > id_cursor(cursor))
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

    async def principal_for_credential(self, credential_id: int) -> Principal | None:
        """The principal of a live credential by its id (a page session holds the id, not the token)."""
        query = (sa.select(credentials, parties.c.status.label("party_status"))
                 .select_from(credentials.outerjoin(parties, credentials.c.party_id == parties.c.id))
                 .where(credentials.c.id == credential_id))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return self._live_principal(row)

    async def principal_for_token(self, token: str) -> Principal | None:
        """The principal a live (unrevoked) bearer token stands for, else None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(_PRINCIPAL_QUERY, {"token_hash": hash_token(token)})).first()
        return self._live_principal(row)

    @staticmethod
    def _live_principal(row: Any) -> Principal | None:
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
