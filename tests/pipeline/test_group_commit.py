"""Group commit of acceptances (SQLite and PostgreSQL): concurrent requests share transactions,
each still committed before its 202, SE ids unique and increasing in arrival order; a request that
fails inside a group fails alone. And SQLite writes serialized in process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from ams_adapters.text_limit import text_limit
from gateway.domain.model import Action, Role
from gateway.domain.records import Principal
from gateway.pipeline.config import PipelineConfig
from gateway.pipeline.consent import audit_rows, authorize_targets
from gateway.pipeline.group_commit import GroupCommitter, NewRequest, committer_for
from gateway.pipeline.requests import TextRequest, build_text
from gateway.store.schema import audit_log, han_deliveries, han_requests, parties
from gateway.store.store import open_store
from tests.pipeline.conftest import running_stack


async def test_concurrent_texts_are_committed_in_groups_sqlite(tmp_path: Path) -> None:
    await _concurrent_texts(tmp_path, {})


async def test_concurrent_texts_are_committed_in_groups_postgresql(tmp_path: Path, migrated_pg_url: str) -> None:
    await _concurrent_texts(tmp_path, {"url": migrated_pg_url})


async def _concurrent_texts(tmp_path: Path, storage: dict[str, str]) -> None:
    async with running_stack(tmp_path / "d", storage=storage) as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi = [p.esi_id for p in s.premises[:3]]
        await s.customer(token, esi)
        answers = await asyncio.gather(*(s.request(token, {"kind": "text", "esi_ids": [esi[i % 3]],
                                                           "text": f"n{i}", "duration_minutes": 30})
                                         for i in range(40)))
        assert all(a.status_code == 202 for a in answers), [a.text for a in answers if a.status_code != 202]
        se_ids = sorted(a.json()["se_id"] for a in answers)
        assert len(set(se_ids)) == 40 and se_ids == list(range(se_ids[0], se_ids[0] + 40))
        committer = committer_for(s.gw.store)
        assert 1 <= committer.groups < 40  # requests shared transactions
        async with s.gw.store.engine.connect() as conn:
            by_request = dict((await conn.execute(sa.select(han_requests.c.id, han_requests.c.se_id))).all())
            rows = (await conn.execute(sa.select(han_deliveries.c.request_id, han_deliveries.c.se_id))).all()
            audits = (await conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(
                audit_log.c.action == "send_text", audit_log.c.allowed.is_(True)))).scalar_one()
        # Every answer names its own committed request, whose outbox row carries the same SE id.
        assert {a.json()["id"]: a.json()["se_id"] for a in answers} == by_request
        assert sorted(rows) == sorted(by_request.items())
        assert audits == 40


async def test_a_failing_request_fails_alone_in_its_group(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    now = datetime.now(UTC)
    try:
        async with store.engine.begin() as conn:
            party_id = (await conn.execute(parties.insert().values(
                name="A", duns="123456789", contact_email="a@a.test", status="active", created_at=now))
                        ).inserted_primary_key[0]
        command = build_text(TextRequest(kind="text", esi_ids=["x"], text="hi"), [text_limit(None, "1.1")], now,
                             PipelineConfig(), [])

        def item(party: int) -> NewRequest:
            return NewRequest(party, "text", '{"kind": "text"}', command, [], "[]", [], now)

        committer = GroupCommitter(store)
        results = await asyncio.gather(committer.submit(item(party_id)), committer.submit(item(999_999)),
                                       committer.submit(item(party_id)), return_exceptions=True)
        assert isinstance(results[1], sa.exc.IntegrityError)  # no such party (foreign key)
        good = [r for r in results if isinstance(r, tuple)]
        assert len(good) == 2
        async with store.engine.connect() as conn:
            stored = (await conn.execute(sa.select(han_requests.c.id, han_requests.c.party_id))).all()
        assert sorted(i for i, _ in stored) == sorted(r[0] for r in good)
        assert {p for _, p in stored} == {party_id}
    finally:
        await store.close()


async def test_sqlite_writers_queue_instead_of_failing(tmp_path: Path) -> None:
    """Many tasks each holding a write transaction across an await: with one writer at a time in
    process none of them meets SQLite's busy handler ("database is locked")."""
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    now = datetime.now(UTC)
    try:
        async def writer(i: int) -> None:
            async with store.engine.begin() as conn:
                await conn.execute(parties.insert().values(name=f"P{i}", duns=f"{i:09d}", contact_email="p@p.test",
                                                           status="active", created_at=now))
                await asyncio.sleep(0.01)  # the lock is held across awaits
                # Re-entrant for the holding task: a nested write transaction does not deadlock.
                async with store.engine.begin() as inner:
                    await inner.execute(sa.select(1))

        await asyncio.gather(*(writer(i) for i in range(30)))
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(parties))).scalar_one() == 30
    finally:
        await store.close()


async def test_authorization_of_targets_matches_authorize(tmp_path: Path) -> None:
    """The batched consent read decides as `gateway.authz.authorize` does, premise by premise."""
    from gateway.authz import authorize

    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        party_id = 1
        mine, price_only = s.premises[0].esi_id, s.premises[1].esi_id
        await s.customer(token, [mine])
        await s.customer(token, [price_only], scopes=["price"])
        targets = [mine, price_only, s.premises[2].esi_id, "10443720009999999"]
        principal = Principal(Role.THIRD_PARTY, party_id=party_id)
        now = s.gw.clock.now()
        batched = await authorize_targets(s.gw.store, principal, Action.SEND_TEXT, targets, now)
        for esi in targets:
            one = await authorize(s.gw.store, principal, Action.SEND_TEXT, esi, now=now)
            assert batched[esi].decision == one, esi
        assert [r["reason"] for r in audit_rows(principal, Action.SEND_TEXT, list(batched.values()), now)] == [
            "agreement", "scope_not_granted", "no_agreement", "unknown_premise"]
