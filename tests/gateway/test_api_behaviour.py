"""Cross-cutting API behaviour: problem details, pagination, Idempotency-Key, rate limits,
credentials (rotation, revocation, suspension), OpenAPI + docs page, health, metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.store import migrate
from tests.gateway.conftest import ONCOR, Gateway, install_code


async def test_unauthenticated_is_a_problem_with_www_authenticate(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/premises")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "unauthorized"
    r = await gateway.client.get("/v1/premises", headers=gateway.auth("hgw_made_up"))
    assert r.status_code == 401


async def test_unknown_route_is_a_problem(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/nothing-here", headers=gateway.op)
    assert r.status_code == 404 and r.json()["status"] == 404


async def test_pagination_and_filters(gateway: Gateway) -> None:
    await gateway.load_premises()
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = await gateway.client.get("/v1/premises", headers=gateway.op, params=params)
        page = r.json()
        seen += [p["esi_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8 and seen == sorted(seen)
    r = await gateway.client.get("/v1/premises", headers=gateway.op,
                                 params={"tdsp": "oncor", "rep": "Volt REP"})
    assert {p["esi_id"][:7] for p in r.json()["items"]} == {"1044372", "1017699"}
    assert len(r.json()["items"]) == 3
    r = await gateway.client.get("/v1/premises", headers=gateway.op, params={"tdsp": "duke"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tdsp"
    r = await gateway.client.get("/v1/premises", headers=gateway.op, params={"limit": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"
    # Cursors are digits in the OpenAPI document (a pattern); one this API never returned is named.
    r = await gateway.client.get("/v1/parties", headers=gateway.op, params={"cursor": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"
    r = await gateway.client.get("/v1/parties", headers=gateway.op, params={"cursor": "99999999999"})
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "invalid_cursor"


async def test_idempotency_key_replays_and_refuses_a_different_body(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    body = {"kind": "in_home_device_services", "scopes": ["text"],
            "premises": [{"esi_id": ONCOR, "meter_number": "MTR-1"}],
            "customer_email": "alice@example.test", "duration_months": 12}
    headers = {**gateway.auth(token), "Idempotency-Key": "invite-alice-1"}
    first = await gateway.client.post("/v1/agreements", headers=headers, json=body)
    assert first.status_code == 201
    replay = await gateway.client.post("/v1/agreements", headers=headers, json=body)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(gateway.mails_to("alice@example.test")) == 1  # one invitation, not two
    other = await gateway.client.post("/v1/agreements", headers=headers,
                                      json={**body, "duration_months": 6})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # Concurrent requests with one key: one effect.
    headers2 = {**gateway.auth(token), "Idempotency-Key": "party-credential-1"}
    pid = (await gateway.client.get("/v1/me", headers=gateway.auth(token))).json()["party"]["id"]
    results = await asyncio.gather(*(
        gateway.client.post(f"/v1/parties/{pid}/credentials", headers=headers2, json={})
        for _ in range(5)))
    assert len({r.json()["token"] for r in results}) == 1
    r = await gateway.client.get(f"/v1/parties/{pid}/credentials", headers=gateway.op)
    assert len(r.json()["items"]) == 2  # the test's own token + exactly one new one
    r = await gateway.client.post("/v1/agreements", headers={**headers, "Idempotency-Key": ""},
                                  json=body)
    assert r.status_code == 400 and r.json()["code"] == "invalid_idempotency_key"
    # Keys live 24 h; after that the same key is a new request (here: a duplicate invitation).
    gateway.clock.advance(timedelta(hours=24, seconds=1))
    await gateway.run_timers()
    r = await gateway.client.post("/v1/agreements", headers=headers, json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "duplicate_active_agreement"


@pytest.mark.gateway_config(rate_limit={"requests_per_second": 0.5, "burst": 3})
async def test_rate_limit_answers_429_with_retry_after(gateway: Gateway) -> None:
    _pid, token = await gateway.new_party("Acme", "123456789")
    statuses = [(await gateway.client.get("/v1/me", headers=gateway.auth(token)))
                for _ in range(5)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    limited = statuses[-1]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["code"] == "rate_limited" and "retry after" in limited.json()["detail"]
    # Operators are not limited; the bucket refills.
    assert (await gateway.client.get("/v1/me", headers=gateway.op)).status_code == 200
    await asyncio.sleep(int(limited.headers["retry-after"]) + 0.1)
    assert (await gateway.client.get("/v1/me", headers=gateway.auth(token))).status_code == 200


async def test_credentials_rotation_revocation_suspension(gateway: Gateway) -> None:
    party_id, old = await gateway.new_party("Acme", "123456789")
    r = await gateway.client.post(f"/v1/parties/{party_id}/credentials",
                                  headers=gateway.auth(old), json={"label": "rotated"})
    assert r.status_code == 201
    new = r.json()["token"]
    assert r.json()["credential"]["token_prefix"] == new[:8]
    listed = (await gateway.client.get(f"/v1/parties/{party_id}/credentials",
                                       headers=gateway.auth(new))).json()["items"]
    assert len(listed) == 2 and all("token" not in c for c in listed)
    old_id = next(c["id"] for c in listed if c["label"] == "test")
    assert (await gateway.client.delete(f"/v1/credentials/{old_id}",
                                        headers=gateway.auth(new))).status_code == 204
    assert (await gateway.client.get("/v1/me", headers=gateway.auth(old))).status_code == 401
    live = (await gateway.client.get(f"/v1/parties/{party_id}/credentials",
                                     headers=gateway.auth(new), params={"revoked": "false"}))
    assert [c["label"] for c in live.json()["items"]] == ["rotated"]
    assert (await gateway.client.get("/v1/me", headers=gateway.auth(new))).status_code == 200
    r = await gateway.client.patch(f"/v1/parties/{party_id}", headers=gateway.op,
                                   json={"status": "suspended"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    assert (await gateway.client.get("/v1/me", headers=gateway.auth(new))).status_code == 401
    r = await gateway.client.post("/v1/parties", headers=gateway.op, json={
        "name": "Dup", "duns": "123456789", "contact_email": "d@x.test"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "duns"
    r = await gateway.client.post("/v1/parties", headers=gateway.op, json={
        "name": "Bad", "duns": "12345", "contact_email": "d@x.test"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "duns"


async def test_devices_limits_and_duplicates(gateway: Gateway) -> None:
    await gateway.load_premises()
    for i in range(5):
        r = await gateway.client.post(f"/v1/premises/{ONCOR}/devices", headers=gateway.op,
                                      json={"eui64": f"00124b00000000{i:02x}",
                                            "device_type": "in_home_display",
                                            "install_code": install_code(i)})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "provision_requested"
    r = await gateway.client.post(f"/v1/premises/{ONCOR}/devices", headers=gateway.op,
                                  json={"eui64": "00124B00000000FF", "device_type": "thermostat",
                                        "install_code": install_code(99)})
    assert r.status_code == 409 and r.json()["code"] == "device_limit_reached"
    r = await gateway.client.post(f"/v1/premises/{ONCOR}/devices", headers=gateway.op,
                                  json={"eui64": "XYZ", "device_type": "thermostat",
                                        "install_code": install_code(98)})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "eui64"
    # No route here: the delete is stored and waits for one; the device is delete_requested.
    r = await gateway.client.delete(f"/v1/premises/{ONCOR}/devices/00124B0000000000",
                                    headers=gateway.op)
    assert r.status_code == 202 and r.json()["kind"] == "delete_device", r.text
    r = await gateway.client.get(f"/v1/premises/{ONCOR}/devices", headers=gateway.op,
                                 params={"status": "delete_requested"})
    assert [d["eui64"] for d in r.json()["items"]] == ["00124B0000000000"]


async def test_premise_upsert_names_the_bad_esi_id(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/premises", headers=gateway.op,
                                  json={"esi_id": "1008901000000000000", "meter_number": "M"})
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "esi_id" and error["code"] == "esi_id_wrong_length"
    assert "22 digits" in error["message"]
    r = await gateway.client.post("/v1/premises", headers=gateway.op,
                                  json={"esi_id": ONCOR, "meter_number": "M", "se_version": "1.1"})
    assert r.status_code == 201 and r.json()["tdsp"] == "oncor"
    r = await gateway.client.post("/v1/premises", headers=gateway.op,
                                  json={"esi_id": ONCOR, "meter_number": "M2"})
    assert r.status_code == 200 and r.json()["meter_number"] == "M2"


async def test_openapi_docs_health_ready_metrics(gateway: Gateway) -> None:
    spec = (await gateway.client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/agreements" in spec["paths"] and "/v1/premises/{esi_id}/devices" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    docs = await gateway.client.get("/docs")
    assert docs.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in docs.text
    asset = await gateway.client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    ready = (await gateway.client.get("/readyz")).json()
    assert ready == {"status": "ready", "schema_revision": migrate.revisions()[-1]}  # the head
    await gateway.client.get("/v1/premises", headers=gateway.op)
    await gateway.client.get(f"/v1/premises/{ONCOR}", headers=gateway.op)
    metrics = (await gateway.client.get("/metrics")).text
    # Route templates, never raw paths: ESI IDs must not become label values.
    assert 'route="/v1/premises/{esi_id}",status="404"' in metrics
    assert ONCOR not in metrics
    assert 'hangw_http_requests_total{method="GET",route="/v1/premises",status="200"}' in metrics
    assert "hangw_http_request_seconds_bucket" in metrics
