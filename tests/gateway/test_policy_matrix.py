"""The authorization matrix generated from /openapi.json: every operation × role × situation.

Situations: the object is the caller's own; it is another party's (including a device of another
party on a premise both parties serve); it does not exist. Roles: operator, party A (the owner),
party B, an assigned field technician, no token, a revoked token, a suspended party's token.

Held for every operation, with no list of operations in this file (a new endpoint is covered the
day it is added): another party's object answers exactly what an unknown one answers (status and
problem code); a caller without a valid token gets 401; the owner is let in where its policy says;
and no byte of party A's data reaches anyone else, in a body or a header.
"""

from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.api.policy import POLICIES
from tests.conftest import CHATTY_LIBRARIES
from tests.gateway.conftest import ONCOR, ONCOR_2, ONCOR_EAST, Gateway, install_code

UNKNOWN_ID = "9000000"
UNKNOWN_ESI = "10443720000009999"
UNKNOWN_EUI = "00124B00DEADBEEF"
A_DEVICE = "00124B0000A0A0A1"
A_HOOK = "http://127.0.0.1:9/acme-hook"
A_TEXT = "acme private text 7731"


async def _world(gw: Gateway) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]]:
    """Tokens by role, A's objects by path parameter, and A's data that nobody else may see."""
    await gw.load_premises()
    party_a, token_a = await gw.new_party("Acme", "111111111")
    party_b, token_b = await gw.new_party("Bravo", "222222222")
    party_s, token_s = await gw.new_party("Sleepy", "333333333")
    agreement_a = await gw.active_agreement(token_a, ONCOR, "MTR-1", "alice@example.test", scopes=["text"])
    await gw.active_agreement(token_a, ONCOR_2, "MTR-2", "alice@example.test", kind="in_home_device")
    await gw.active_agreement(token_b, ONCOR_2, "MTR-2", "alice@example.test", kind="in_home_device")
    await gw.active_agreement(token_b, ONCOR_EAST, "MTR-3", "bob@example.test")
    r = await gw.client.post(f"/v1/premises/{ONCOR_2}/devices", headers=gw.auth(token_a), json={
        "eui64": A_DEVICE, "install_code": install_code(99), "device_type": "thermostat"})
    assert r.status_code == 201, r.text
    r = await gw.client.post("/v1/han-requests", headers=gw.auth(token_a),
                             json={"kind": "text", "esi_ids": [ONCOR], "text": A_TEXT})
    assert r.status_code == 202, r.text
    request_a = r.json()["id"]
    r = await gw.client.post("/v1/webhooks", headers=gw.auth(token_a), json={"url": A_HOOK})
    assert r.status_code == 201, r.text
    webhook_a = r.json()["id"]
    # A usage report of A's, over an Energy Data agreement of A's (past two days, 15-minute data).
    local = gw.clock.now().astimezone(ZoneInfo("America/Chicago")).date()
    end = datetime(local.year, local.month, local.day, tzinfo=ZoneInfo("America/Chicago"))
    period = {"from": (end - timedelta(days=2)).isoformat(), "to": end.isoformat()}
    r = await gw.client.post("/v1/agreements", headers=gw.auth(token_a), json={
        "kind": "energy_data", "premises": [{"esi_id": ONCOR, "meter_number": "MTR-1"}],
        "customer_email": "alice@example.test", "duration_months": 1,
        "data": {"mode": "one_time", "interval": "15min", **period}})
    assert r.status_code == 201, r.text
    assert (await gw.consent("alice@example.test")).status_code == 200
    r = await gw.client.post("/v1/usage-reports", headers=gw.auth(token_a), json={
        "agreement_ids": [r.json()["id"]], **period})
    assert r.status_code == 202, r.text
    report_a = r.json()["id"]
    r = await gw.client.post(f"/v1/parties/{party_a}/credentials", headers=gw.auth(token_a), json={"label": "x"})
    credential_a = r.json()["credential"]["id"]
    r = await gw.client.post(f"/v1/parties/{party_a}/credentials", headers=gw.op, json={})
    revoked = r.json()["token"]
    assert (await gw.client.delete(f"/v1/credentials/{r.json()['credential']['id']}",
                                   headers=gw.op)).status_code == 204
    r = await gw.client.patch(f"/v1/parties/{party_s}", headers=gw.op, json={"status": "suspended"})
    assert r.status_code == 200
    r = await gw.client.post("/v1/technicians", headers=gw.op, json={"name": "Tex", "email": "tex@example.test"})
    tech_id = r.json()["id"]
    assert (await gw.client.post(f"/v1/technicians/{tech_id}/assignments", headers=gw.op,
                                 json={"esi_id": ONCOR_2})).status_code == 204
    token_tech = (await gw.client.post(f"/v1/technicians/{tech_id}/credentials", headers=gw.op,
                                       json={})).json()["token"]
    # A's on-demand read (stored as the API stores it; no route here reads it: it fails "unreachable").
    read_a = await gw.store.submit_meter_read(party_id=party_a, agreement_id=None, esi_id=ONCOR, tdsp="oncor",
                                              day="2026-01-01", limit=10, now=gw.clock.now(),
                                              expires_at=gw.clock.now())
    tokens = {"op": gw.operator_token, "a": token_a, "b": token_b, "tech": token_tech, "revoked": revoked,
              "suspended": token_s}
    own = {"party_id": str(party_a), "credential_id": str(credential_a), "technician_id": str(tech_id),
           "agreement_id": str(agreement_a), "request_id": str(request_a), "webhook_id": str(webhook_a),
           "report_id": str(report_a),
           "event_id": "1", "read_id": str(read_a.id), "esi_id": ONCOR, "eui64": A_DEVICE, "token": "not-a-link-token"}
    secrets = ("Acme", "111111111", "api@acme.test", A_DEVICE, A_HOOK, A_TEXT, token_a)
    assert party_b != party_a
    return tokens, own, secrets


def _unknown(params: list[str]) -> dict[str, str]:
    found = {p: UNKNOWN_ESI if p == "esi_id" else UNKNOWN_EUI if p == "eui64" else
             "no-such-link-token" if p == "token" else UNKNOWN_ID for p in params}
    if "eui64" in params:
        found["esi_id"] = ONCOR_2  # an unknown device on the premise both parties serve
    return found


def _own(params: list[str], own: dict[str, str]) -> dict[str, str]:
    found = {p: own[p] for p in params}
    if "eui64" in params:
        found["esi_id"] = ONCOR_2  # A's device sits on the premise A and B both serve
    return found


@pytest.mark.gateway_config(rate_limit={"requests_per_second": 1000.0, "burst": 10_000})
async def test_generated_matrix(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    await _matrix(gateway, caplog)


@pytest.mark.gateway_config(rate_limit={"requests_per_second": 1000.0, "burst": 10_000})
async def test_generated_matrix_on_postgresql(gateway_pg: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    await _matrix(gateway_pg, caplog)


async def _matrix(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    tokens, own, secrets = await _world(gateway)
    caplog.set_level(logging.DEBUG)
    for library in CHATTY_LIBRARIES:  # every line, the database driver's too
        caplog.set_level(logging.DEBUG, logger=library)
    first_record = len(caplog.records)  # from here on, only others' calls (A's reads come last)
    doc = (await gateway.client.get("/openapi.json")).json()
    operations = [(method.upper(), path) for path, item in doc["paths"].items() for method in item
                  if path.startswith("/v1/")]
    assert len(operations) >= 40, operations
    failures: list[str] = []
    calls = 0

    async def call(role: str | None, method: str, path: str) -> tuple[int, str, str]:
        nonlocal calls
        calls += 1
        headers = {} if role is None else gateway.auth(tokens[role])
        r = await gateway.client.request(method, path, headers=headers,
                                         json={} if method in ("POST", "PATCH") else None)
        code = r.json().get("code", "") if r.headers.get("content-type", "").endswith("json") and r.content else ""
        if role not in ("a", "op"):
            seen = r.text + " ".join(f"{k}: {v}" for k, v in r.headers.items())
            for secret in secrets:
                if secret in seen and secret not in path:
                    failures.append(f"{role} {method} {path}: A's {secret!r} in the answer")
        return r.status_code, code, r.text[:160]

    # Callers with no valid token: 401 everywhere, whatever the object.
    for (method, template), role in itertools.product(operations, (None, "revoked", "suspended")):
        params = re.findall(r"{(\w+)}", template)
        for values in (_own(params, own), _unknown(params)):
            status, _code, text = await call(role, method, template.format(**values))
            if status != 401:
                failures.append(f"{role or 'anon'} {method} {template}: {status}, expected 401 ({text})")

    # Another party's object answers what an unknown one answers; for B and for the technician
    # (which owns no party's objects), on every operation with an id in its path. The technician
    # assigned to the premise does see its devices (the policy's premise relation): not compared.
    for (method, template), role in itertools.product(operations, ("b", "tech")):
        params = re.findall(r"{(\w+)}", template)
        allow = set(POLICIES[f"{method} {template}"].describe()["allow"])
        if not params or (role == "tech" and allow & {"premise", "device_owner"}):
            continue
        foreign = await call(role, method, template.format(**_own(params, own)))
        unknown = await call(role, method, template.format(**_unknown(params)))
        if foreign[:2] != unknown[:2]:
            failures.append(f"{role} {method} {template}: A's object {foreign[:2]} but unknown {unknown[:2]} "
                            f"({foreign[2]})")
        if 200 <= foreign[0] < 300:
            failures.append(f"{role} {method} {template}: {foreign[0]} on A's object")

    # Nothing of A's in what the gateway logged while the others tried (the test's own HTTP client,
    # httpx, logs the URLs it was given: not the gateway's lines; A's device EUI-64 is in paths the
    # others sent themselves, which the access log prints).
    logged = [f"{r.name}: {r.getMessage()}" for r in caplog.records[first_record:]
              if not r.name.startswith(("httpx", "httpcore"))]
    for secret in secrets:
        failures.extend(f"log line with A's {secret!r}: {line[:160]}" for line in logged
                        if secret in line and secret not in (A_DEVICE,))

    # The owner is let in where its policy names it (reads only: writes would change the world).
    for method, template in operations:
        policy = POLICIES[f"{method} {template}"]
        owner_rel = {"owner", "party_itself", "device_owner"} & set(policy.describe()["allow"])
        if method != "GET" or not owner_rel:
            continue
        status, _code, text = await call("a", method, template.format(**_own(re.findall(r"{(\w+)}", template), own)))
        if status != 200:
            failures.append(f"a {method} {template}: {status} on its own object ({text})")

    print(f"generated matrix: {len(operations)} operations, {calls} calls")
    assert not failures, "\n".join(failures)
