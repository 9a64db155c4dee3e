"""Shared state is shared (issue 14): two `hangw serve` processes on one PostgreSQL database, the
caller's requests spread over both, checked from the outside (HTTP answers, the mails each instance
sent, what the API reports per premise).

- a third party's rate limit: what both instances let through together stays within its limit;
- one Idempotency-Key sent concurrently to both instances: every caller gets the same answer and the
  action happened once (one party, one webhook secret, one invitation mail, one text, one event);
- two providers' conflicting load-control events accepted at the same moment on the two instances:
  never both scheduled for one premise (`refuse`), single requests and fan-out pages alike.

The two instances are started once for the module (a start costs seconds on a loaded machine).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from sandbox.testbed import create_database, drop_database
from tests.gateway.conftest import (
    CENTERPOINT,
    ONCOR,
    ONCOR_2,
    PG_SESSION_PREFIX,
    PREMISES_CSV,
)
from tests.gateway.instances import Instance, consent_links, instances, new_party, operator_token

# A slow refill, so that what the clock adds during a test on a loaded machine stays small beside
# what a second bucket per instance would let through.
RATE, BURST = 2.0, 40
# Premises both providers have agreements on: (ESI ID, meter number, customer).
SHARED = [(ONCOR, "MTR-1", "alice@example.test"), (ONCOR_2, "MTR-2", "alice@example.test")]


@dataclass
class Pair:
    url: str
    a: Instance
    b: Instance
    op_token: str
    parties: dict[str, str] = field(default_factory=dict)  # name -> token

    def op(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.op_token}"}

    def auth(self, party: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.parties[party]}"}

    def mails_to(self, address: str) -> list[str]:
        return [body for inst in (self.a, self.b) for to, body in inst.mails() if to == address]


async def _consent(pair: Pair, http: httpx.AsyncClient, party: str, premises: list[tuple[str, str]],
                   email: str) -> None:
    """`party` invites `email`'s customer to an agreement on `premises`; the customer accepts by the
    link in the mail (whichever instance sent it)."""
    before = len(pair.mails_to(email))
    r = await http.post("/v1/agreements", headers=pair.auth(party), json={
        "kind": "in_home_device_services", "scopes": ["text", "price", "load_control"],
        "premises": [{"esi_id": e, "meter_number": m} for e, m in premises], "customer_email": email,
        "duration_months": 12})
    assert r.status_code == 201, r.text
    bodies = pair.mails_to(email)
    assert len(bodies) == before + 1
    links = consent_links(bodies[-1], pair.a.base_url) + consent_links(bodies[-1], pair.b.base_url)
    assert links, bodies[-1]
    async with httpx.AsyncClient(timeout=20) as customer:
        assert (await customer.get(links[0])).status_code == 200
        assert (await customer.post(links[0], data={"decision": "accept"})).status_code == 200


async def _set_up(pair: Pair) -> None:
    async with httpx.AsyncClient(base_url=pair.a.base_url, timeout=20) as http:
        r = await http.post("/v1/premises/import", content=PREMISES_CSV,
                            headers={**pair.op(), "Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        for name, duns in (("Alpha", "100000001"), ("Beta", "100000002"), ("Limited", "100000003"),
                           ("Counted", "100000004"), ("Idem", "100000005"), ("Ids", "100000006")):
            _id, pair.parties[name] = await new_party(http, pair.op_token, name, duns)
        for party in ("Alpha", "Beta", "Idem", "Ids"):
            by_customer: dict[str, list[tuple[str, str]]] = {}
            for esi, meter, email in SHARED:
                by_customer.setdefault(email, []).append((esi, meter))
            for email, premises in by_customer.items():
                await _consent(pair, http, party, premises, email)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, pg_migrated_template: str) -> Iterator[Pair]:
    name = f"{PG_SESSION_PREFIX}_shared_{uuid.uuid4().hex[:6]}"
    url = asyncio.run(create_database(name, template=pg_migrated_template))
    toml = (f'[security]\ndevice_key_secret = "{Fernet.generate_key().decode()}"\n'
            '[pipeline]\npoll_interval_seconds = 0.05\nfanout_page = 10\n'
            'webhook_allowed_networks = ["127.0.0.0/8"]\n'
            f'[rate_limit]\nrequests_per_second = {RATE}\nburst = {BURST}\n')
    try:
        with instances(tmp_path_factory.mktemp("pair"), url, 2, toml) as (a, b):
            found = Pair(url, a, b, asyncio.run(operator_token(url)))
            asyncio.run(_set_up(found))
            yield found
    finally:
        asyncio.run(drop_database(name))


@pytest.fixture
async def clients(pair: Pair) -> Any:
    # A few connections per instance: the shared PostgreSQL server's connections are a shared budget.
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=pair.a.base_url, timeout=30, limits=limits) as ca, \
            httpx.AsyncClient(base_url=pair.b.base_url, timeout=30, limits=limits) as cb:
        yield ca, cb


# ---------------------------------------------------------------------------------------------- rate limit

async def test_one_partys_rate_limit_holds_across_both_instances(pair: Pair, clients: Any) -> None:
    ca, cb = clients
    me = pair.auth("Limited")
    n = 3 * BURST
    started = time.monotonic()
    answers = await asyncio.gather(*((ca, cb)[i % 2].get("/v1/me", headers=me) for i in range(n)))
    elapsed = time.monotonic() - started
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(ok) + len(refused) == n, {r.status_code for r in answers}
    # Each instance alone would let through its own burst: together 2 × 40 and more.
    assert BURST <= len(ok) <= BURST + RATE * elapsed, (len(ok), elapsed)
    for r in refused:
        assert r.json()["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1 and r.headers["RateLimit-Limit"] == str(BURST)

    # One bucket whichever instance answers: a fresh party's requests, one at a time to each
    # instance in turn, count down one RateLimit-Remaining (two buckets would each count half).
    me = pair.auth("Counted")
    started = time.monotonic()
    remaining = []
    for i in range(10):
        r = await (ca, cb)[i % 2].get("/v1/me", headers=me)
        assert r.status_code == 200, r.text
        remaining.append(int(r.headers["RateLimit-Remaining"]))
        assert int(r.headers["RateLimit-Reset"]) >= 1
    refilled = RATE * (time.monotonic() - started)
    assert remaining[0] == BURST - 1
    assert remaining[-1] <= BURST - 10 + refilled, (remaining, refilled)


# ---------------------------------------------------------------------------------------------- Idempotency-Key

CALLERS = 6  # concurrent callers of one key, alternately on each instance


async def _same_key(clients: Any, path: str, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    """CALLERS concurrent requests with one Idempotency-Key; all got the same answer: that answer."""
    key = f"k-{uuid.uuid4().hex}"
    answers = await asyncio.gather(*(clients[i % 2].post(path, headers={**headers, "Idempotency-Key": key},
                                                         json=body) for i in range(CALLERS)))
    assert {r.status_code for r in answers} == {answers[0].status_code}, [(r.status_code, r.text) for r in answers]
    assert answers[0].status_code in (201, 202), answers[0].text
    assert {r.content for r in answers} == {answers[0].content}
    # Exactly one caller's request acted; the others were told theirs is a replay.
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == CALLERS - 1
    return answers[0]


async def test_one_idempotency_key_on_both_instances_acts_once(pair: Pair, clients: Any) -> None:
    ca, _cb = clients
    # A party (the operator's write; its DUNS number is unique).
    await _same_key(clients, "/v1/parties", pair.op(), {"name": "Gamma", "duns": "100000009",
                                                        "contact_email": "api@gamma.test"})
    listed = (await ca.get("/v1/parties", headers=pair.op(), params={"limit": 100})).json()["items"]
    assert [p["duns"] for p in listed].count("100000009") == 1

    # A webhook: its signing secret is in the 201 only — every caller holds the same one.
    hook = (await _same_key(clients, "/v1/webhooks", pair.auth("Idem"),
                            {"url": "http://127.0.0.1:9/hook"})).json()
    hooks = (await ca.get("/v1/webhooks", headers=pair.auth("Idem"))).json()["items"]
    assert [h["id"] for h in hooks] == [hook["id"]]

    # An agreement invitation: one agreement, one mail to the customer (sent after the commit).
    before = len(pair.mails_to("carol@example.test"))
    invited = (await _same_key(clients, "/v1/agreements", pair.auth("Idem"), {
        "kind": "in_home_device_services", "scopes": ["text"], "customer_email": "carol@example.test",
        "premises": [{"esi_id": CENTERPOINT, "meter_number": "MTR-4"}], "duration_months": 12})).json()
    await asyncio.sleep(0.5)  # a second mail, were there one, would be sent after its commit
    assert len(pair.mails_to("carol@example.test")) == before + 1
    mine = (await ca.get("/v1/agreements", headers=pair.auth("Idem"), params={"limit": 100})).json()["items"]
    assert [a["id"] for a in mine if a["customer_email"] == "carol@example.test"] == [invited["id"]]

    # A text (the group committer's kind), a price and a load-control event: one request each.
    for body in ({"kind": "text", "esi_ids": [ONCOR], "text": "once"},
                 {"kind": "price", "esi_ids": [ONCOR], "provider_id": 1, "price": "0.1234"},
                 {"kind": "load_control", "esi_ids": [ONCOR_2], "device_classes": 1, "criticality": 3,
                  "duration_minutes": 30, "start": (datetime.now(UTC) + timedelta(days=300)).isoformat()}):
        accepted = (await _same_key(clients, "/v1/han-requests", pair.auth("Idem"), body)).json()
        items = (await ca.get(f"/v1/han-requests/{accepted['id']}/deliveries",
                              headers=pair.auth("Idem"))).json()["items"]
        assert {i["se_id"] for i in items} == {accepted["se_id"]}


# ---------------------------------------------------------------------------------------------- arbitration

def _event(window: int, **extra: Any) -> dict[str, Any]:
    """A load-control event in its own hour, `window` days ahead (rounds never overlap each other)."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=window)
    return {"kind": "load_control", "criticality": 3, "duration_minutes": 60, "start": start.isoformat(), **extra}


async def test_two_providers_on_two_instances_never_both_get_a_premise(pair: Pair, clients: Any) -> None:
    """`refuse` (the default): of two providers' overlapping events accepted at the same moment on
    the two instances, one is scheduled on the premise, never both."""
    ca, cb = clients
    alpha, beta = pair.auth("Alpha"), pair.auth("Beta")
    # Single-premise requests, one per provider per round, sent at once.
    for window in range(1, 6):
        first, second = await asyncio.gather(
            ca.post("/v1/han-requests", headers=alpha, json=_event(window, esi_ids=[ONCOR], device_classes=1)),
            cb.post("/v1/han-requests", headers=beta, json=_event(window, esi_ids=[ONCOR], device_classes=1)))
        assert sorted((first.status_code, second.status_code)) == [202, 409], (first.text, second.text)
        refused = first if first.status_code == 409 else second
        assert refused.json()["code"] == "event_conflict"

    # Alpha's fan-out (every device class, expanded page by page by either instance's dispatcher)
    # against Beta's single-class events on the same premises, sent while the fan-out is expanded.
    for window in range(10, 14):
        fanout = await ca.post("/v1/han-requests", headers=alpha,
                               json=_event(window, all_premises=True, device_classes=0x0F))
        assert fanout.status_code == 202, fanout.text

        async def beta_event(esi: str, device_class: int, delay: float,
                             window: int = window) -> tuple[str, int]:
            await asyncio.sleep(delay)
            r = await cb.post("/v1/han-requests", headers=beta,
                              json=_event(window, esi_ids=[esi], device_classes=device_class))
            assert r.status_code in (202, 409), r.text
            return esi, r.status_code

        singles = await asyncio.gather(*(beta_event(esi, 1 << bit, 0.04 * bit)
                                         for bit in range(4) for esi in (ONCOR, ONCOR_2)))
        deadline = time.monotonic() + 20
        while (state := (await ca.get(f"/v1/han-requests/{fanout.json()['id']}", headers=pair.op())).json())[
                "state"] == "expanding":
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.05)
        items = (await ca.get(f"/v1/han-requests/{fanout.json()['id']}/deliveries", headers=pair.op(),
                              params={"limit": 100})).json()["items"]
        alpha_has = {i["esi_id"] for i in items}
        for esi in (ONCOR, ONCOR_2):
            beta_has = any(e == esi and code == 202 for e, code in singles)
            # Exactly one provider's event is scheduled on the premise.
            assert (esi in alpha_has) != beta_has, (window, esi, alpha_has, singles, state["excluded"])


# ---------------------------------------------------------------------------------------------- SE ids

async def test_se_ids_are_unique_and_increase_in_commit_order_across_instances(pair: Pair, clients: Any) -> None:
    """One counter row, incremented under its row lock by the transaction that commits the request:
    requests accepted concurrently on both instances never share an id (each id also names its
    deliveries), and a request accepted after another one's 202 carries a larger id, whichever
    instance took either."""
    ca, cb = clients
    beta = pair.auth("Ids")
    bodies = [{"kind": "text", "esi_ids": [(ONCOR, ONCOR_2)[i % 2]], "text": f"id {i}"} for i in range(12)]
    answers = await asyncio.gather(*((ca, cb)[i % 2].post("/v1/han-requests", headers=beta, json=body)
                                     for i, body in enumerate(bodies)))
    assert [r.status_code for r in answers] == [202] * len(bodies), [r.text for r in answers]
    ids = [r.json()["se_id"] for r in answers]
    assert len(set(ids)) == len(ids), ids
    for r in answers[:2]:
        items = (await ca.get(f"/v1/han-requests/{r.json()['id']}/deliveries", headers=beta)).json()["items"]
        assert [i["se_id"] for i in items] == [r.json()["se_id"]]
    # One after the other, alternately on each instance: increasing.
    sequential = []
    for i in range(6):
        r = await (cb, ca)[i % 2].post("/v1/han-requests", headers=beta,
                                       json={"kind": "text", "esi_ids": [ONCOR], "text": f"next {i}"})
        assert r.status_code == 202, r.text
        sequential.append(r.json()["se_id"])
    assert sequential == sorted(sequential) and len(set(sequential)) == len(sequential), sequential
    assert min(sequential) > max(ids)
