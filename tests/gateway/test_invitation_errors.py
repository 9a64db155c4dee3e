"""Every typed invitation error: field, code and value named in an RFC 9457 problem."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import AEP_CENTRAL, CENTERPOINT, LARGE, ONCOR, ONCOR_2, Gateway

ALICE = "alice@example.test"


def _errors(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in body["errors"]}


@pytest.fixture
async def acme(gateway: Gateway) -> str:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    return token


@pytest.mark.parametrize(
    ("premises", "email", "extra", "expected"),
    [
        ([(ONCOR, "MTR-1")], ALICE, {"months": 2},
         {("duration_months", "duration_not_allowed")}),
        ([(ONCOR, "MTR-1")], ALICE, {"months": 24},
         {("duration_months", "duration_not_allowed")}),
        ([("10443720000000099", "MTR-X")], ALICE, {},
         {("premises[0].esi_id", "unknown_esi_id")}),
        ([("1044372000000001", "MTR-1")], ALICE, {},
         {("premises[0].esi_id", "esi_id_wrong_length")}),
        ([("10443720000000001X", "MTR-1")], ALICE, {},
         {("premises[0].esi_id", "esi_id_not_digits")}),
        ([("19999990000000001", "MTR-1")], ALICE, {},
         {("premises[0].esi_id", "esi_id_unknown_tdsp")}),
        ([("10089010000000000004", "MTR-4")], ALICE, {},  # CenterPoint needs 22 digits
         {("premises[0].esi_id", "esi_id_wrong_length")}),
        ([(ONCOR, "MTR-9")], ALICE, {},
         {("premises[0].meter_number", "meter_number_mismatch")}),
        ([(ONCOR, "MTR-1")], "mallory@example.test", {},
         {("customer_email", "customer_email_mismatch")}),
        ([(ONCOR, "MTR-1")], "not-an-email", {},
         {("customer_email", "invalid_email")}),
        ([(ONCOR, "MTR-1"), (ONCOR, "MTR-1")], ALICE, {},
         {("premises[1].esi_id", "duplicate_esi_id")}),
        ([], ALICE, {}, {("premises", "premises_required")}),
        ([(AEP_CENTRAL, "MTR-5")], "dave@example.test", {},
         {("premises[0].esi_id", "meter_not_han_ready")}),
        ([(ONCOR, "MTR-1")], ALICE, {"scopes": []}, {("scopes", "scope_required")}),
        ([(ONCOR, "MTR-1")], ALICE, {"scopes": ["text", "text"]}, {("scopes", "duplicate_scope")}),
        # Several problems at once are all reported.
        ([(ONCOR, "MTR-9"), ("12a", "x")], ALICE, {"months": 7},
         {("premises[0].meter_number", "meter_number_mismatch"),
          ("premises[1].esi_id", "esi_id_not_digits"),
          ("duration_months", "duration_not_allowed")}),
    ],
)
async def test_invitation_errors(gateway: Gateway, acme: str, *,
                                 premises: list[tuple[str, str]], email: str, extra: dict[str, Any],
                                 expected: set[tuple[str, str]]) -> None:
    r = await gateway.invite(acme, esi_ids=premises, email=email, **extra)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 422 and body["type"] == "/docs/errors#invalid_request"
    assert _errors(body) == expected
    for error in body["errors"]:
        assert error["message"]
    assert gateway.mails_to(email) == []  # nothing sent for an invalid invitation


async def test_scopes_on_in_home_device_kind_refused(gateway: Gateway, acme: str) -> None:
    r = await gateway.client.post("/v1/agreements", headers=gateway.auth(acme), json={
        "kind": "in_home_device", "scopes": ["text"],
        "premises": [{"esi_id": ONCOR, "meter_number": "MTR-1"}],
        "customer_email": ALICE, "duration_months": 12})
    assert r.status_code == 422
    assert _errors(r.json()) == {("scopes", "scope_not_allowed")}


async def test_large_commercial_allows_36_months(gateway: Gateway, acme: str) -> None:
    r = await gateway.invite(acme, esi_ids=[(LARGE, "MTR-8")], email="plant@example.test",
                             months=36)
    assert r.status_code == 201, r.text


async def test_duplicate_active_agreement(gateway: Gateway, acme: str) -> None:
    assert (await gateway.invite(acme, esi_ids=[(ONCOR, "MTR-1")], email=ALICE)).status_code == 201
    r = await gateway.invite(acme, esi_ids=[(ONCOR_2, "MTR-2"), (ONCOR, "MTR-1")], email=ALICE)
    assert r.status_code == 422
    assert _errors(r.json()) == {("premises[1].esi_id", "duplicate_active_agreement")}
    # Another kind on the same premise is fine.
    r = await gateway.invite(acme, esi_ids=[(ONCOR, "MTR-1")], email=ALICE, kind="in_home_device")
    assert r.status_code == 201, r.text


async def test_schema_errors_are_field_level_problems(gateway: Gateway, acme: str) -> None:
    r = await gateway.client.post("/v1/agreements", headers=gateway.auth(acme), json={
        "kind": "historical_usage", "scopes": ["weather"], "premises": [{"esi_id": ONCOR}],
        "customer_email": ALICE, "duration_months": "twelve", "surprise": 1})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"kind", "scopes[0]", "premises[0].meter_number", "duration_months",
            "surprise"} <= fields
    bad_kind = next(e for e in r.json()["errors"] if e["field"] == "kind")
    assert bad_kind["value"] == "historical_usage"


async def test_other_customers_premises_need_their_own_email(gateway: Gateway, acme: str) -> None:
    r = await gateway.invite(acme, esi_ids=[(ONCOR, "MTR-1"), (CENTERPOINT, "MTR-4")],
                             email=ALICE)
    assert r.status_code == 422
    assert _errors(r.json()) == {("customer_email", "customer_email_mismatch")}
