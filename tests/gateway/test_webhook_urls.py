"""Webhook registration over HTTP: URLs are parsed by a real parser and refused with the rule they
break (issue 11, defect 7: `http://¼/` was accepted and later stopped every party's webhooks),
internal targets are refused by default (SSRF), and the list is a page like every other list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import Gateway, running_gateway

BAD_URLS = [
    ("http://¼/", "invalid_url"),  # the IDNA error that stopped the sender (issue 11)
    ("http://", "url_host"),
    ("https:///path", "url_host"),
    ("http://user:secret@example.com/hook", "url_userinfo"),
    ("http://example.com:70000/hook", "url_port"),
    ("http://example.com:0/hook", "url_port"),
    ("http://exa mple.com/", "invalid_url"),
    ("http://example.com/\u0000", "invalid_url"),
    ("ftp://example.com/", "string_pattern_mismatch"),
    ("http://example.com/" + "a" * 490, "string_too_long"),
    ("http://" + ("ü" * 20 + ".") * 3 + "example.com/" + "a" * 410, "url_too_long"),  # 492, 510 IDNA-encoded
]


async def _register(gw: Gateway, token: str, url: str) -> Any:
    return await gw.client.post("/v1/webhooks", headers=gw.auth(token), json={"url": url})


@pytest.mark.parametrize(("url", "code"), BAD_URLS)
async def test_a_url_that_cannot_be_sent_is_refused_naming_field_value_and_rule(
        gateway: Gateway, url: str, code: str) -> None:
    _p, token = await gateway.new_party("Acme", "123456789")
    r = await _register(gateway, token, url)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    (error,) = r.json()["errors"]
    assert (error["field"], error["code"], error["value"]) == ("url", code, url)
    assert error["message"]
    assert (await gateway.client.get("/v1/webhooks", headers=gateway.auth(token))).json()["items"] == []


REFUSED_BY_DEFAULT = [
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
    ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://[::1]:8080/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4 inside IPv6
    ("http://[fc00::1]/hook", "private"),  # ULA
    ("http://[fe80::1]/hook", "link-local"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://100.64.0.1/hook", "not globally routable"),  # carrier-grade NAT
    ("http://localhost:8080/hook", "localhost resolves to a loopback address"),
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 written as one number
]


async def test_by_default_internal_targets_are_refused(tmp_path: Path) -> None:
    """The default configuration (no allowed networks): literal addresses and names that resolve
    to loopback, private, link-local, unspecified, multicast or reserved addresses are refused."""
    async with running_gateway(tmp_path / "d", pipeline={"webhook_allowed_networks": []}) as gw:
        _p, token = await gw.new_party("Acme", "123456789")
        for url, rule in REFUSED_BY_DEFAULT:
            r = await _register(gw, token, url)
            assert r.status_code == 422, (url, r.text)
            (error,) = r.json()["errors"]
            assert (error["field"], error["code"], error["value"]) == ("url", "webhook_target_not_allowed", url)
            assert rule in error["message"] and "webhook_allowed_networks" in error["message"], error
        # A public address is accepted (nothing is sent at registration); so is a name that does
        # not resolve now: every send resolves and checks again.
        for url in ("http://93.184.215.14/hook", "https://hooks.example.invalid/hangw"):
            r = await _register(gw, token, url)
            assert r.status_code == 201, (url, r.text)
        listed = (await gw.client.get("/v1/webhooks", headers=gw.auth(token))).json()["items"]
        assert [w["url"] for w in listed] == ["http://93.184.215.14/hook", "https://hooks.example.invalid/hangw"]


async def test_an_allowed_network_is_reachable(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "d", pipeline={"webhook_allowed_networks": ["10.20.0.0/16"]}) as gw:
        _p, token = await gw.new_party("Acme", "123456789")
        assert (await _register(gw, token, "http://10.20.3.4:8443/hook")).status_code == 201
        r = await _register(gw, token, "http://10.21.0.1/hook")
        assert r.status_code == 422 and r.json()["errors"][0]["code"] == "webhook_target_not_allowed"


async def test_the_url_is_normalized_and_the_list_is_a_page(gateway: Gateway) -> None:
    _p, token = await gateway.new_party("Acme", "123456789")
    _o, other = await gateway.new_party("Bolt", "987654321")
    r = await _register(gateway, token, "HTTP://127.0.0.1:9/Hook?x=1")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["url"] == "http://127.0.0.1:9/Hook?x=1" and created["secret"].startswith("whsec_")
    assert created["created_at"]
    ids = [created["id"]] + [(await _register(gateway, token, f"http://127.0.0.1:9/{i}")).json()["id"]
                             for i in range(2)]
    first = await gateway.client.get("/v1/webhooks", headers=gateway.auth(token), params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert set(page) == {"items", "next_cursor"}
    assert [w["id"] for w in page["items"]] == ids[:2] and page["next_cursor"]
    assert all(set(w) == {"id", "url", "created_at"} for w in page["items"])  # the secret is shown once
    rest = (await gateway.client.get("/v1/webhooks", headers=gateway.auth(token),
                                     params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [w["id"] for w in rest["items"]] == ids[2:] and rest["next_cursor"] is None
    # An empty cursor is the first page; a cursor that no page gave is refused.
    again = (await gateway.client.get("/v1/webhooks?cursor=", headers=gateway.auth(token))).json()
    assert [w["id"] for w in again["items"]] == ids
    for bad in ("abc", str(2**63), "-1"):
        r = await gateway.client.get("/v1/webhooks", headers=gateway.auth(token), params={"cursor": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor", r.text
    # Another party sees none of them.
    assert (await gateway.client.get("/v1/webhooks", headers=gateway.auth(other))).json() == {
        "items": [], "next_cursor": None}
    assert (await gateway.client.delete(f"/v1/webhooks/{ids[0]}", headers=gateway.auth(other))).status_code == 404
    assert (await gateway.client.delete(f"/v1/webhooks/{ids[0]}", headers=gateway.auth(token))).status_code == 204
    left = (await gateway.client.get("/v1/webhooks", headers=gateway.auth(token))).json()["items"]
    assert [w["id"] for w in left] == ids[1:]


async def test_openapi_documents_every_webhook_answer(gateway: Gateway) -> None:
    spec = (await gateway.client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]

    def ok_schema(path: str, method: str, status: str) -> dict[str, Any]:
        answer = spec["paths"][path][method]["responses"][status]
        found: dict[str, Any] = answer["content"]["application/json"]["schema"]
        return found

    def props(ref: dict[str, Any]) -> set[str]:
        return set(schemas[ref["$ref"].rsplit("/", 1)[1]]["properties"])

    assert props(ok_schema("/v1/webhooks", "post", "201")) == {"id", "url", "created_at", "secret"}
    assert props(ok_schema("/v1/webhooks", "get", "200")) == {"items", "next_cursor"}
    assert props(ok_schema("/v1/webhooks/{webhook_id}/dead-letters", "get", "200")) == {"items", "next_cursor"}
    assert props(ok_schema("/v1/webhooks/{webhook_id}/dead-letters/redeliver", "post", "200")) == {"requeued"}
    assert props(ok_schema("/v1/webhooks/{webhook_id}/dead-letters/{event_id}/redeliver", "post", "200")) == {
        "requeued"}
    assert "content" not in spec["paths"]["/v1/webhooks/{webhook_id}"]["delete"]["responses"]["204"]
    dead = schemas["DeadLetterOut"]["properties"]
    assert {"id", "request_id", "event", "attempts", "last_error", "dead_at"} <= set(dead)
    assert spec["paths"]["/v1/webhooks"]["post"]["requestBody"]
    url = schemas["WebhookIn"]["properties"]["url"]
    assert url["maxLength"] == 500 and url["format"] == "uri"
