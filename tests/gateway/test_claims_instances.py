"""Two instances (two stores on one database, each with its own engine and pool, as two
`hangw serve` processes have) claim the same queues at the same moment: the mail queue, webhook
events and provisioning operations. Each item goes to one of them; what one claimed is the
other's only after the lease; a claimer that outlived its lease cannot overwrite the newer
claim's outcome. On PostgreSQL the claims really race (FOR UPDATE SKIP LOCKED); on SQLite, the
embedded single-node store, the same calls work under its one writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.config import ConfigError, parse_config
from gateway.store import provisioning as prov
from gateway.store import webhooks as webhook_store
from gateway.store.schema import webhook_outbox
from gateway.store.store import Store, open_store
from tests.gateway.conftest import db_url, pg_url  # noqa: F401 (fixtures)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def two(db_url: str) -> AsyncIterator[tuple[Store, Store]]:  # noqa: F811
    here = await open_store(db_url)
    other = await open_store(db_url, migrate_to=None)
    try:
        yield here, other
    finally:
        await other.close()
        await here.close()


async def _race(claimers: list[Callable[[], Awaitable[list[Any]]]]) -> list[list[int]]:
    """Each claimer claims until it gets nothing, all at once; the ids each one got."""
    async def drain(claim: Callable[[], Awaitable[list[Any]]]) -> list[int]:
        got: list[int] = []
        for _ in range(200):
            rows = await claim()
            if not rows:
                return got
            got += [r.id for r in rows]
        raise AssertionError("claims never ran dry")
    return list(await asyncio.gather(*(drain(c) for c in claimers)))


def _disjoint_cover(got: list[list[int]], expected: set[int]) -> None:
    flat = [i for ids in got for i in ids]
    assert len(flat) == len(set(flat)), "an item was claimed twice"
    assert set(flat) == expected


async def test_each_mail_is_claimed_once_and_taken_over_after_the_lease(two: tuple[Store, Store]) -> None:
    here, other = two
    # Stored by an instance that died before its first try: due for everyone at once.
    ids = {(await here.enqueue_mail(recipient=f"c{n}@example.test", subject="s", body="b", now=NOW,
                                    lease=timedelta(0))).id for n in range(30)}
    got = await _race([lambda: here.claim_mail(NOW, LEASE, 3), lambda: other.claim_mail(NOW, LEASE, 3)])
    _disjoint_cover(got, ids)

    # Both die holding their claims: nobody gets a mail before the lease is over, then all come
    # back (to `other`, taking over), each counting the attempts cut short: the storer's first
    # try, the raced claim's, and this one.
    assert await other.claim_mail(NOW + LEASE - timedelta(seconds=1), LEASE, 100) == []
    late = NOW + LEASE + timedelta(seconds=1)
    taken = await other.claim_mail(late, LEASE, 100)
    assert {m.id for m in taken} == ids and all(m.attempts == 3 for m in taken)
    # The first claimer comes back from a long pause: its outcome no longer counts; `other`'s does.
    first = taken[0]
    stale = type(first)(first.id, first.recipient, first.subject, first.body, 2)
    assert await here.mail_failed(stale, "too late", NOW) is False
    assert await other.mail_sent(first, late) is True
    assert (await other.mail_counts())["sent"] == 1


async def test_each_webhook_event_is_claimed_once_and_in_its_requests_order(two: tuple[Store, Store]) -> None:
    here, other = two
    party = await here.create_party(name="Acme", duns="123456789", contact_email="a@acme.test", now=NOW)
    hook = await webhook_store.create_webhook(here.engine, party_id=party.id, url="http://127.0.0.1:9/h",
                                              sealed_secret="whsec_x", now=NOW)
    async with here.transaction() as conn:
        await webhook_store.enqueue(conn, [{"webhook_id": hook, "request_id": req, "created_at": NOW,
                                            "body": f"{req}.{n}"} for req in range(12) for n in range(3)])

    def claimer(store: Store) -> Callable[[], Awaitable[list[Any]]]:
        return lambda: webhook_store.claim_heads(store.engine, hook, NOW, NOW + LEASE, limit=2)
    got = await _race([claimer(here), claimer(other)])
    # Only the first event of each request may go while it is not delivered: 12 heads, each once.
    _disjoint_cover(got, await _heads(here))

    # One head delivered by its claimer: the next event of that request is claimable, by one.
    first = min(got[0] + got[1])
    claimed_by = here if first in got[0] else other
    assert await _record(claimed_by, first, 1, NOW) is True
    got = await _race([claimer(here), claimer(other)])
    _disjoint_cover(got, {first + 1})

    # The claims ran out (their instances died): the heads are claimed again, once, and a late
    # outcome of the first claim is dropped.
    late = NOW + LEASE + timedelta(seconds=1)
    got = await _race([lambda: webhook_store.claim_heads(here.engine, hook, late, late + LEASE, limit=2),
                       lambda: webhook_store.claim_heads(other.engine, hook, late, late + LEASE, limit=2)])
    assert len(got[0]) + len(got[1]) == 12
    second = min(got[0] + got[1])
    assert await _record(here, second, 1, NOW) is False
    assert await _record(here, second, 2, late) is True


async def _record(store: Store, event_id: int, claimed_attempts: int, at: datetime) -> bool:
    """The claimer of attempt `claimed_attempts` records the event delivered."""
    recorded, _next = await webhook_store.record_attempt_and_claim(
        store.engine, SimpleNamespace(id=event_id, attempts=claimed_attempts), {"delivered_at": at}, None,
        now=at, lease_until=at + LEASE)
    return recorded


async def _heads(store: Store) -> set[int]:
    """The first event of each request (their bodies end in .0)."""
    async with store.engine.connect() as conn:
        return set((await conn.execute(sa.select(webhook_outbox.c.id).where(
            webhook_outbox.c.body.like("%.0")))).scalars())


async def test_each_provisioning_operation_is_claimed_once(two: tuple[Store, Store]) -> None:
    here, other = two
    esis = [f"104437200000000{n:02d}" for n in range(10)]
    for esi in esis:
        await here.upsert_premise({
            "esi_id": esi, "tdsp": "oncor", "meter_number": f"M-{esi[-2:]}", "customer_email": None, "rep": None,
            "premise_class": "residential", "se_version": "1.1", "enhanced_meter": False}, NOW)
    ops = {await prov.ProvisioningStore(here).request_premise_operation(esi, prov.INITIALIZE_HAN, NOW)
           for esi in esis}
    mine, theirs = prov.ProvisioningStore(here), prov.ProvisioningStore(other)
    got = await _race([lambda: mine.claim_due(NOW, NOW + LEASE, 3), lambda: theirs.claim_due(NOW, NOW + LEASE, 3)])
    _disjoint_cover(got, ops)
    # A retry recorded by a claimer whose lease ran out is dropped; the newer claim's counts.
    late = NOW + LEASE + timedelta(seconds=1)
    again = await theirs.claim_due(late, late + LEASE, 100)
    assert {r.id for r in again} == ops and all(r.attempts == 2 for r in again)
    op = again[0].id
    await mine.retry(op, 1, late, 3600, "stale")
    await theirs.submitted(op, 2, late)
    assert (await mine.operation(op)).state == prov.SUBMITTED  # type: ignore[union-attr]


@pytest.mark.parametrize(("section", "values", "key"), [
    ("pipeline", {"webhook_timeout_seconds": 10, "webhook_lease_seconds": 10}, "pipeline.webhook_lease_seconds"),
    ("mail", {"smtp_timeout_seconds": 30, "lease_seconds": 5}, "mail.lease_seconds"),
])
def test_a_lease_shorter_than_an_attempt_is_refused(section: str, values: dict[str, float], key: str) -> None:
    """A lease an attempt can outlast would have every slow attempt made twice: refused at start,
    naming the key, its value and the limit."""
    with pytest.raises(ConfigError) as caught:
        parse_config({section: values}, env={})
    [problem] = caught.value.problems
    lease = values["webhook_lease_seconds" if section == "pipeline" else "lease_seconds"]
    assert problem.key == key and problem.value == lease
    assert "must be longer than" in problem.message and "timeout_seconds (" in problem.message
