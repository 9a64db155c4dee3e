"""Migrations from every earlier revision, on SQLite and on the real PostgreSQL; the store on
PostgreSQL; the audit log is append-only in the database itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from gateway.domain.model import AgreementKind, AgreementState, Role, Scope
from gateway.domain.records import AgreementPremise, Principal
from gateway.store import migrate
from gateway.store.parties import hash_token
from gateway.store.schema import metadata
from gateway.store.store import Store, make_engine, open_store
from tests.gateway.migration_rows import ROWS_PER_TABLE, broken_references, fill_every_table, kept, snapshot

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
REVISIONS = migrate.revisions()


def test_revisions_are_linear_and_known() -> None:
    assert [f"{n:04d}" for n in range(1, 21)] + ["0022", "0023", "0024", "0025", "0026"] == REVISIONS


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


# Tables whose rows a revision drops on purpose: 0011 replaced the stored answers of idempotent
# requests (a cache of at most a day) with sealed ones instead of converting them.
EMPTIED_BY = {"idempotency_keys": "0011"}


@pytest.mark.parametrize("start", REVISIONS[:-1])
async def test_upgrade_from_every_earlier_revision(db_url: str, start: str) -> None:
    """Every table holds rows, each reference points at a row (so tables rebuilt on SQLite are
    pointed at): every row keeps every value through the upgrade and every reference holds."""
    engine = make_engine(db_url)
    try:
        await migrate.upgrade(engine, start)
        assert await migrate.current_revision(engine) == start
        async with engine.begin() as conn:
            filled = await conn.run_sync(fill_every_table)
            before = await conn.run_sync(snapshot)
        assert "parties" in filled and all(n == ROWS_PER_TABLE for n in filled.values())
        await migrate.upgrade(engine, "head")
        assert await migrate.current_revision(engine) == REVISIONS[-1]
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            after = await conn.run_sync(snapshot)
            assert await conn.run_sync(broken_references) == []
        for table in filled:
            if start < EMPTIED_BY.get(table, ""):
                assert after[table] == [], table
            else:
                assert kept(before, after, table) == before[table], table
    finally:
        await engine.dispose()


async def test_fresh_database_matches_the_schema(db_url: str) -> None:
    store = await open_store(db_url)
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


async def _exercise(store: Store) -> None:
    party = await store.create_party(name="Acme", duns="123456789", contact_email="a@x.test",
                                     now=NOW)
    cred, token = await store.issue_credential(role=Role.THIRD_PARTY, party_id=party.id,
                                               label="k", now=NOW)
    assert (await store.principal_for_token(token)) == Principal(
        Role.THIRD_PARTY, credential_id=cred.id, party_id=party.id)
    assert await store.upsert_premise({
        "esi_id": "10443720000000001", "tdsp": "oncor", "meter_number": "M1",
        "customer_email": "c@x.test", "rep": None, "premise_class": "residential",
        "se_version": "1.1", "enhanced_meter": False}, NOW) == "created"
    agreement = await store.create_agreement(
        party_id=party.id, kind=AgreementKind.IN_HOME_DEVICE_SERVICES,
        scopes=[Scope.TEXT, Scope.PRICE], customer_email="c@x.test", duration_months=12,
        covered=[AgreementPremise("10443720000000001", "M1")], consent_token_hash=hash_token("t"),
        invitation_expires_at=NOW + timedelta(days=30), now=NOW)
    assert agreement.created_at == NOW and agreement.created_at.tzinfo is not None
    found = await store.agreement_by_token("consent_token_hash", hash_token("t"))
    assert found is not None and found.scopes == (Scope.TEXT, Scope.PRICE)
    won = await store.update_agreement(agreement.id, expect_states=[AgreementState.INVITED],
                                       state=AgreementState.ACTIVE.value)
    lost = await store.update_agreement(agreement.id, expect_states=[AgreementState.INVITED],
                                        state=AgreementState.REJECTED.value)
    assert won is not None and won.state is AgreementState.ACTIVE and lost is None
    await store.append_audit(at=NOW, principal=Principal(Role.THIRD_PARTY, party_id=party.id),
                             action="send_text", esi_id="10443720000000001", device_eui64=None,
                             agreement_id=agreement.id, allowed=True, reason="agreement")
    page = await store.list_audit()
    assert [e.reason for e in page.items] == ["agreement"]


async def test_store_works_the_same_on_both_backends(db_url: str) -> None:
    store = await open_store(db_url)
    try:
        await _exercise(store)
        # The audit log refuses changes at the database level.
        for statement in ("UPDATE audit_log SET allowed = false", "DELETE FROM audit_log"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with store.engine.begin() as conn:
                    await conn.execute(sa.text(statement))
        assert len((await store.list_audit()).items) == 1
    finally:
        await store.close()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        async with store.engine.connect() as conn:
            mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
        assert mode == "wal"
    finally:
        await store.close()
