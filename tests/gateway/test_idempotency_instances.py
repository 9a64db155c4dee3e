"""Two gateway instances on one database, one Idempotency-Key: the instance that commits second
rolls its action back and replays the first one's answer.

In one process concurrent requests with a key wait on a lock; across instances the key is reserved
first (an advisory lock on PostgreSQL, tests/gateway/test_shared_state_instances.py shows it with two
`hangw serve` processes), and the key's unique row stays the last guard. Here the other instance is
a second store on the same database (its own engine and pool), committing the same key without the
reservation while this instance's handler runs: the unit of work's insert of the key then breaks
the unique constraint, which the store raises as `ConstraintViolation`, and `run_idempotent`
answers with the stored answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import Request, Response

from gateway.api.idempotency import make_guard, run_idempotent
from gateway.store import idempotency as stored_answers
from gateway.store.errors import ConstraintViolation
from gateway.store.store import open_store

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


async def test_the_second_instance_to_commit_a_key_replays_the_first_answer(db_url: str) -> None:
    here = await open_store(db_url)
    other = await open_store(db_url, migrate_to=None)  # another instance: its own engine and pool
    try:
        guard = make_guard(token="hgw_token", key="create-acme", credential_id=1, operation="POST /v1/parties",
                           path="/v1/parties", query=b"", body=b'{"duns": "123456789"}')

        async def other_instance_answers() -> None:
            async with other.engine.begin() as conn:
                await stored_answers.insert(conn, guard.scope, guard.key_hash,
                                            guard.seal(201, "application/json", b'{"id": "first"}'), NOW)

        async def handler(_request: Request) -> Response:
            # Meanwhile the other instance served the same keyed request and committed first
            # (before this one writes: on SQLite the first writer holds the database). Its own
            # task: a unit of work is joined only by the task that opened it.
            await asyncio.create_task(other_instance_answers())
            # This instance acts too: its write joins the unit of work.
            await here.create_party(name="Acme", duns="123456789", contact_email="a@acme.test", now=NOW)
            return Response(b'{"id": "second"}', status_code=201, media_type="application/json")

        answer = await run_idempotent(Request({"type": "http"}), guard, here.engine, handler, lambda: NOW)

        assert answer.status_code == 201
        assert answer.body == b'{"id": "first"}'
        assert answer.headers["idempotent-replayed"] == "true"
        # This instance's action rolled back with its copy of the key: it happened once.
        assert await here.get_party_by_duns("123456789") is None
    finally:
        await other.close()
        await here.close()


async def test_a_unit_of_work_that_breaks_a_constraint_raises_the_stores_error(db_url: str) -> None:
    """Outside gateway/store nothing catches the database library's errors: a unit whose write
    breaks a constraint raises ConstraintViolation (the database's error as its cause), after its
    rollback; a party created twice is refused the same way."""
    store = await open_store(db_url)
    try:
        guard = make_guard(token="hgw_token", key="twice", credential_id=1, operation="POST /v1/parties",
                           path="/v1/parties", query=b"", body=b"{}")
        answer = guard.seal(201, "application/json", b"{}")
        try:
            async with store.engine.unit_of_work() as conn:
                await store.create_party(name="Other", duns="987654321", contact_email="o@o.test", now=NOW)
                await stored_answers.insert(conn, guard.scope, guard.key_hash, answer, NOW)
                await stored_answers.insert(conn, guard.scope, guard.key_hash, answer, NOW)
        except ConstraintViolation as exc:
            assert exc.__cause__ is not None
        else:
            raise AssertionError("one key was stored twice")
        assert await store.get_party_by_duns("987654321") is None  # rolled back with the unit
        assert await stored_answers.find(store.engine, guard.scope, guard.key_hash) is None

        await store.create_party(name="Acme", duns="123456789", contact_email="a@acme.test", now=NOW)
        try:
            await store.create_party(name="Acme again", duns="123456789", contact_email="b@acme.test", now=NOW)
        except ConstraintViolation as exc:
            assert "123456789" in str(exc)
        else:
            raise AssertionError("a second party with one DUNS number was stored")
    finally:
        await store.close()
