"""The trust boundary tried from the outside, as a hostile party would: real HTTP against a
running gateway, a second party trying to get in, and the bytes left on disk afterwards.

Each test reproduces a defect found that way (issue 11) and holds its fix."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.api.policy import POLICIES, PolicyRoute
from gateway.store.schema import han_requests
from tests.conftest import CHATTY_LIBRARIES
from tests.gateway.conftest import ONCOR, ONCOR_2, Gateway, install_code
from zigbee_se import parse_install_code

PARTY_PATH = "/v1/parties/{pid}/credentials"


async def _suspend(gw: Gateway, party_id: int) -> None:
    r = await gw.client.patch(f"/v1/parties/{party_id}", headers=gw.op, json={"status": "suspended"})
    assert r.status_code == 200, r.text


async def test_a_revoked_token_gets_no_replay_of_a_keyed_credential_or_webhook(gateway: Gateway) -> None:
    pid, token = await gateway.new_party("Acme", "123456789")
    keyed = {**gateway.auth(token), "Idempotency-Key": "rotate-1"}
    first = await gateway.client.post(f"/v1/parties/{pid}/credentials", headers=keyed, json={"label": "x"})
    assert first.status_code == 201
    hook = await gateway.client.post("/v1/webhooks", headers={**gateway.auth(token), "Idempotency-Key": "hook-1"},
                                     json={"url": "http://127.0.0.1:9/hook"})
    assert hook.status_code == 201, hook.text
    # The same caller, still valid: the stored answer comes back.
    again = await gateway.client.post(f"/v1/parties/{pid}/credentials", headers=keyed, json={"label": "x"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # Another credential of the same party, same key: not the same principal, so no replay.
    other = first.json()["token"]
    r = await gateway.client.post(f"/v1/parties/{pid}/credentials",
                                  headers={**gateway.auth(other), "Idempotency-Key": "rotate-1"}, json={"label": "x"})
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers and r.json()["token"] != other
    # Revoked: 401, and not one byte of the stored answers.
    me = (await gateway.client.get("/v1/me", headers=gateway.auth(token))).json()
    r = await gateway.client.delete(f"/v1/credentials/{me['credential_id']}", headers=gateway.op)
    assert r.status_code == 204
    for path, key, body in ((f"/v1/parties/{pid}/credentials", "rotate-1", {"label": "x"}),
                            ("/v1/webhooks", "hook-1", {"url": "http://127.0.0.1:9/hook"})):
        r = await gateway.client.post(path, headers={**gateway.auth(token), "Idempotency-Key": key}, json=body)
        assert r.status_code == 401, (path, r.status_code)
        assert "hgw_" not in r.text and "whsec_" not in r.text
    # Suspended party: the other (live) credential gets nothing either.
    await _suspend(gateway, pid)
    r = await gateway.client.post(f"/v1/parties/{pid}/credentials",
                                  headers={**gateway.auth(other), "Idempotency-Key": "rotate-1"}, json={"label": "x"})
    assert r.status_code == 401 and "hgw_" not in r.text


async def test_a_revoked_token_gets_no_replay_on_postgresql(gateway_pg: Gateway) -> None:
    await test_a_revoked_token_gets_no_replay_of_a_keyed_credential_or_webhook(gateway_pg)


async def test_concurrent_requests_with_one_key_act_once(gateway: Gateway) -> None:
    await _one_key_many_requests(gateway)


async def test_concurrent_requests_with_one_key_act_once_on_postgresql(gateway_pg: Gateway) -> None:
    await _one_key_many_requests(gateway_pg)


async def _one_key_many_requests(gw: Gateway) -> None:
    """Ten concurrent POSTs with one key (a client retrying impatiently): one text, one answer."""
    await gw.load_premises()
    _pid, token = await gw.new_party("Acme", "123456789")
    await gw.active_agreement(token, ONCOR, "MTR-1", "alice@example.test", scopes=["text"])
    keyed = {**gw.auth(token), "Idempotency-Key": "one-text"}
    body = {"kind": "text", "esi_ids": [ONCOR], "text": "once"}
    answers = await asyncio.gather(*(gw.client.post("/v1/han-requests", headers=keyed, json=body)
                                     for _ in range(10)))
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 9
    async with gw.store.engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(han_requests))).scalar_one()
    assert count == 1


async def test_devices_by_party_on_postgresql(gateway_pg: Gateway) -> None:
    await test_a_party_sees_and_manages_only_the_devices_it_provisioned(gateway_pg)


async def test_a_key_replays_only_the_same_operation(gateway: Gateway) -> None:
    pid, token = await gateway.new_party("Acme", "123456789")
    keyed = {**gateway.auth(token), "Idempotency-Key": "k-1"}
    assert (await gateway.client.post(f"/v1/parties/{pid}/credentials", headers=keyed, json={})).status_code == 201
    r = await gateway.client.post("/v1/webhooks", headers=keyed, json={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert "hgw_" not in r.text


async def test_operator_only_operations_refuse_a_third_party_before_reading_the_body(gateway: Gateway) -> None:
    _pid, token = await gateway.new_party("Acme", "123456789")
    for path in ("/v1/parties", "/v1/technicians", "/v1/premises", "/v1/lifecycle-runs"):
        r = await gateway.client.post(path, headers={**gateway.auth(token), "Content-Type": "application/json"},
                                      content=b"{not json")
        assert r.status_code == 403 and r.json()["code"] == "operator_only", (path, r.status_code, r.text)
    r = await gateway.client.post("/v1/parties", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401


@pytest.mark.gateway_config(rate_limit={"requests_per_second": 0.5, "burst": 3})
async def test_rate_limit_headers_per_party(gateway: Gateway) -> None:
    _a, token_a = await gateway.new_party("Acme", "123456789")
    _b, token_b = await gateway.new_party("Bravo", "223456789")
    answers = [await gateway.client.get("/v1/me", headers=gateway.auth(token_a)) for _ in range(4)]
    assert [int(r.headers["ratelimit-remaining"]) for r in answers[:3]] == [2, 1, 0]
    assert all(r.headers["ratelimit-limit"] == "3" for r in answers)
    limited = answers[3]
    assert limited.status_code == 429 and int(limited.headers["ratelimit-reset"]) >= 1
    assert int(limited.headers["retry-after"]) >= 1 and limited.headers["ratelimit-remaining"] == "0"
    # Another party has its own bucket.
    r = await gateway.client.get("/v1/me", headers=gateway.auth(token_b))
    assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "2"


async def test_every_operation_declares_a_policy(gateway: Gateway) -> None:
    """A new endpoint cannot forget its authorization: the app does not start without a policy,
    every operation in /openapi.json carries it, and the table names no operation that is gone."""
    doc = (await gateway.client.get("/openapi.json")).json()
    ops = {f"{m.upper()} {path}": op for path, item in doc["paths"].items() for m, op in item.items()}
    assert ops, "no operations in /openapi.json"
    missing = [k for k, op in ops.items() if "x-policy" not in op]
    assert not missing, missing
    for key, op in ops.items():
        assert op["x-policy"]["allow"], key
        assert key in POLICIES, key
    from gateway.app import create_app
    app = create_app(gateway.config, store=gateway.store, run_timers=False)
    routes = [r for r in _routes(app.routes) if hasattr(r, "methods") and r.path != "/openapi.json"]
    plain = [r.path for r in routes if not isinstance(r, PolicyRoute)]
    assert not plain, f"routes outside the policy: {plain}"
    served = {f"{m} {r.path}" for r in routes for m in r.methods if m != "HEAD"}
    assert set(POLICIES) <= served, set(POLICIES) - served


async def test_a_party_sees_and_manages_only_the_devices_it_provisioned(gateway: Gateway) -> None:
    await gateway.load_premises()
    pid_a, token_a = await gateway.new_party("Acme", "123456789")
    pid_b, token_b = await gateway.new_party("Bravo", "223456789")
    for token in (token_a, token_b):
        await gateway.active_agreement(token, ONCOR_2, "MTR-2", "alice@example.test", kind="in_home_device")
    eui_a = "00124B0000AAAA01"
    r = await gateway.client.post(f"/v1/premises/{ONCOR_2}/devices", headers=gateway.auth(token_a), json={
        "eui64": eui_a, "install_code": install_code(1), "device_type": "thermostat"})
    assert r.status_code == 201, r.text
    base = f"/v1/premises/{ONCOR_2}/devices"
    # B: A's device is not listed, and by id it answers exactly as an unknown device.
    listed = await gateway.client.get(base, headers=gateway.auth(token_b))
    assert listed.status_code == 200 and listed.json()["items"] == [] and eui_a not in listed.text
    history = await gateway.client.get(f"/v1/premises/{ONCOR_2}/han", headers=gateway.auth(token_b))
    assert history.status_code == 200 and eui_a not in history.text
    for method in ("GET", "DELETE"):
        foreign = await gateway.client.request(method, f"{base}/{eui_a}", headers=gateway.auth(token_b))
        unknown = await gateway.client.request(method, f"{base}/00124B00DEADBEEF", headers=gateway.auth(token_b))
        assert foreign.status_code == unknown.status_code == 404, (method, foreign.text)
        # The same answer, but for the id the caller sent itself.
        assert foreign.text.replace(eui_a, "X") == unknown.text.replace("00124B00DEADBEEF", "X")
    # A, the operator: see it; A still owns it (B's DELETE did nothing).
    for headers in (gateway.auth(token_a), gateway.op):
        r = await gateway.client.get(f"{base}/{eui_a}", headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "provision_requested", r.text
        assert eui_a in (await gateway.client.get(base, headers=headers)).text
    r = await gateway.client.delete(f"{base}/{eui_a}", headers=gateway.auth(token_a))
    assert r.status_code == 202, r.text
    assert pid_a != pid_b


def _routes(routes: list[Any]) -> list[Any]:
    """Every route of the app, through included routers (FastAPI ≥ 0.16x keeps them as they were)."""
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_routes(inner.routes) if inner is not None else [r])
    return out


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".mbox")


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_no_secret_is_readable_at_rest_or_in_the_logs(gateway: Gateway, backend: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """One of each secret is made, then every byte of the data directory (database, WAL, shared
    memory; the delivered mail itself aside) and every log line is searched for it."""
    caplog.set_level(logging.DEBUG)
    for library in CHATTY_LIBRARIES:  # every line, the database driver's too
        caplog.set_level(logging.DEBUG, logger=library)
    await gateway.load_premises()
    pid, token = await gateway.new_party("Acme", "123456789")
    issued = await gateway.client.post(f"/v1/parties/{pid}/credentials",
                                       headers={**gateway.auth(token), "Idempotency-Key": "secret-token"}, json={})
    api_token = issued.json()["token"]
    hook = await gateway.client.post("/v1/webhooks", headers={**gateway.auth(token), "Idempotency-Key": "secret-hook"},
                                     json={"url": "http://127.0.0.1:9/hook"})
    webhook_secret = hook.json()["secret"]
    r = await gateway.invite(token, esi_ids=[(ONCOR_2, "MTR-2")], email="alice@example.test", kind="in_home_device")
    assert r.status_code == 201
    link = gateway.link(gateway.mails_to("alice@example.test")[-1], "/consent/")
    consent_token = link.rsplit("/", 1)[1]
    assert (await gateway.consent("alice@example.test")).status_code == 200
    code = install_code(7)
    r = await gateway.client.post(f"/v1/premises/{ONCOR_2}/devices", headers=gateway.auth(token), json={
        "eui64": "00124B0000CCCC01", "install_code": code, "device_type": "in_home_display"})
    assert r.status_code == 201, r.text
    link_key = parse_install_code(code).link_key
    secrets = {"api token": api_token.encode(), "webhook secret": webhook_secret.encode(),
               "webhook secret key": webhook_secret.removeprefix("whsec_").encode(),
               "consent token": consent_token.encode(), "install code": code.encode(),
               "install code (lower)": code.lower().encode(), "link key": link_key,
               "link key (hex)": link_key.hex().encode(), "link key (HEX)": link_key.hex().upper().encode()}
    await gateway.client.get(f"/v1/premises/{ONCOR}", headers=gateway.op)  # one more write/read cycle
    data = _all_bytes(gateway.config.data_dir)
    assert len(data) > 10_000, "the data directory holds no database?"
    # The gateway's log lines (the test's own HTTP client, httpx, logs what it sent: not the gateway's).
    logs = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records
                     if not r.name.startswith(("httpx", "httpcore"))).encode()
    assert any(r.name == "aiosqlite" for r in caplog.records), "the database driver's lines were not searched"
    at_rest = {name for name, value in secrets.items() if value in data}
    in_logs = {name for name, value in secrets.items() if value in logs}
    assert not at_rest, f"readable at rest: {sorted(at_rest)}"
    assert not in_logs, f"in the logs: {sorted(in_logs)}: " + "\n".join(
        line for line in logs.decode().splitlines() if any(v.decode(errors="ignore") in line for v in secrets.values()
                                                            if isinstance(v, bytes) and v.isascii()))
    assert json.dumps(secrets["api token"].decode()) not in logs.decode()


def test_the_guide_prints_the_policy_table() -> None:
    from gateway.api.policy import policy_table_markdown
    guide = (Path(__file__).parents[2] / "docs" / "authorization.md").read_text()
    assert policy_table_markdown() in guide, "docs/authorization.md: paste policy_table_markdown() again"


async def test_a_keyed_invitation_mails_only_after_its_commit(gateway: Gateway) -> None:
    """The invitation email of a keyed request is sent after its transaction committed, once; the
    replay mails nobody."""
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    keyed = {**gateway.auth(token), "Idempotency-Key": "invite-1"}
    ok = {"kind": "in_home_device_services", "scopes": ["text"],
          "premises": [{"esi_id": ONCOR, "meter_number": "MTR-1"}],
          "customer_email": "alice@example.test", "duration_months": 12}
    r = await gateway.client.post("/v1/agreements", headers=keyed, json=ok)
    assert r.status_code == 201, r.text
    assert len(gateway.mails_to("alice@example.test")) == 1
    again = await gateway.client.post("/v1/agreements", headers=keyed, json=ok)
    assert again.headers["idempotent-replayed"] == "true"
    assert len(gateway.mails_to("alice@example.test")) == 1


async def test_cancel_all_on_a_premise_answers_as_the_policy_does(gateway: Gateway) -> None:
    """A premise the party may not see: exactly what an unknown one gets; one it may see without
    the load-control scope: 403 naming why."""
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    await gateway.active_agreement(token, ONCOR, "MTR-1", "alice@example.test", scopes=["text"])
    answers = {}
    for esi in (ONCOR, ONCOR_2, "10443720000009999"):
        r = await gateway.client.post("/v1/han-requests", headers=gateway.auth(token),
                                      json={"kind": "cancel_all_load_control", "esi_id": esi})
        answers[esi] = (r.status_code, r.json()["code"])
    assert answers[ONCOR] == (403, "scope_not_granted")
    assert answers[ONCOR_2] == answers["10443720000009999"] == (404, "unknown_premise")


async def test_an_unknown_query_parameter_is_refused_by_name(gateway: Gateway) -> None:
    """A misspelt filter (`stauts`) must not answer the whole, unfiltered list."""
    r = await gateway.client.get("/v1/premises?stauts=active", headers=gateway.op)
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == "stauts" and error["code"] == "unknown_parameter" and "status" in error["message"]
    known = await gateway.client.get("/v1/premises?status=active&cursor=&limit=5", headers=gateway.op)
    assert known.status_code == 200
    # Authentication still comes first: without a token, 401 whatever the parameters.
    assert (await gateway.client.get("/v1/premises?stauts=active")).status_code == 401
