"""The whole consent lifecycle over real HTTP: invite, email, page, accept/reject, re-send,
expiry, renew, reminders, completion, 45-day visibility, termination by each side."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from tests.gateway.conftest import CENTERPOINT, ONCOR, ONCOR_2, Gateway

ALICE = "alice@example.test"
CAROL = "carol@example.test"


async def test_invite_email_page_accept_confirm_and_customer_terminates(gateway: Gateway) -> None:
    await gateway.load_premises()
    party_id, token = await gateway.new_party("Acme", "123456789")
    r = await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1"), (ONCOR_2, "MTR-2")], email=ALICE,
                             scopes=["text", "price"], months=6)
    assert r.status_code == 201, r.text
    agreement = r.json()
    assert agreement["state"] == "invited"
    assert agreement["party_id"] == party_id
    assert {p["esi_id"] for p in agreement["premises"]} == {ONCOR, ONCOR_2}

    # Not yet consented: the premise is invisible to the third party.
    r = await gateway.client.get(f"/v1/premises/{ONCOR}", headers=gateway.auth(token))
    assert r.status_code == 404

    [mail] = gateway.mails_to(ALICE)
    assert "Acme asks for your consent" in mail["Subject"]
    text = gateway.body(mail)
    assert ONCOR in text and "MTR-1" in text and "6 months" in text
    link = gateway.link(mail, "/consent/")

    page = await gateway.client.get(link)
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html and "<h1>" in html
    assert "Acme" in html and "123456789" in html and ONCOR in html and "MTR-2" in html
    assert "text messages and prices" in html and "6 months" in html
    assert 'name="decision" value="accept"' in html and 'name="decision" value="reject"' in html
    assert "<script" not in html

    done = await gateway.client.post(link, data={"decision": "accept"})
    assert done.status_code == 200
    assert "You accepted" in done.text

    # Single use: the link is spent.
    again = await gateway.client.get(link)
    assert again.status_code == 404 and "no longer valid" in again.text
    assert (await gateway.client.post(link, data={"decision": "reject"})).status_code == 404

    r = await gateway.client.get(f"/v1/agreements/{agreement['id']}", headers=gateway.auth(token))
    body = r.json()
    assert body["state"] == "active"
    starts = datetime.fromisoformat(body["starts_at"])
    ends = datetime.fromisoformat(body["ends_at"])
    assert 181 <= (ends - starts).days <= 184

    r = await gateway.client.get(f"/v1/premises/{ONCOR}", headers=gateway.auth(token))
    assert r.status_code == 200 and r.json()["esi_id"] == ONCOR
    assert r.json()["customer_email"] is None  # the customer's contact stays with the operator

    confirmation = gateway.mails_to(ALICE)[-1]
    assert "You accepted" in confirmation["Subject"]
    end_link = gateway.link(confirmation, "/agreements/terminate/")
    page = await gateway.client.get(end_link)
    assert page.status_code == 200 and "End this agreement now" in page.text
    done = await gateway.client.post(end_link)
    assert done.status_code == 200 and "has ended" in done.text

    r = await gateway.client.get(f"/v1/agreements/{agreement['id']}", headers=gateway.auth(token))
    assert r.json()["state"] == "terminated_by_customer"
    # Access stops at once.
    r = await gateway.client.get(f"/v1/premises/{ONCOR}", headers=gateway.auth(token))
    assert r.status_code == 404
    assert (await gateway.client.post(end_link)).status_code == 404


async def test_reject(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    r = await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1")], email=ALICE)
    done = await gateway.consent(ALICE, "reject")
    assert done.status_code == 200 and "You rejected" in done.text
    r = await gateway.client.get(f"/v1/agreements/{r.json()['id']}", headers=gateway.auth(token))
    assert r.json()["state"] == "rejected"
    assert r.json()["end_reason"] == "rejected by the customer"
    # Rejected is final; a new invitation is allowed (no duplicate pending one).
    r = await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1")], email=ALICE)
    assert r.status_code == 201, r.text


async def test_resend_once_then_expiry_then_resend_after_expiry_refused(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    r = await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1")], email=ALICE)
    aid = r.json()["id"]
    first_link = gateway.link(gateway.mails_to(ALICE)[-1], "/consent/")

    gateway.clock.advance(timedelta(days=20))
    r = await gateway.client.post(f"/v1/agreements/{aid}/resend", headers=gateway.auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["resend_count"] == 1
    mails = gateway.mails_to(ALICE)
    assert len(mails) == 2
    second_link = gateway.link(mails[-1], "/consent/")
    assert second_link != first_link
    assert (await gateway.client.get(first_link)).status_code == 404  # the old link died
    assert (await gateway.client.get(second_link)).status_code == 200

    r = await gateway.client.post(f"/v1/agreements/{aid}/resend", headers=gateway.auth(token))
    assert r.status_code == 409
    assert r.json()["code"] == "resend_limit_reached"

    # 30 days after the re-send the invitation expires: the link is dead even before the timer.
    gateway.clock.advance(timedelta(days=30, seconds=1))
    assert (await gateway.client.get(second_link)).status_code == 404
    assert (await gateway.run_timers())["expired"] == 1
    r = await gateway.client.get(f"/v1/agreements/{aid}", headers=gateway.auth(token))
    assert r.json()["state"] == "expired"
    r = await gateway.client.post(f"/v1/agreements/{aid}/resend", headers=gateway.auth(token))
    assert r.status_code == 409 and r.json()["code"] == "resend_limit_reached"


async def test_expired_invitation_may_be_resent_once(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = (await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1")], email=ALICE)).json()["id"]
    gateway.clock.advance(timedelta(days=31))
    assert (await gateway.run_timers())["expired"] == 1
    r = await gateway.client.post(f"/v1/agreements/{aid}/resend", headers=gateway.auth(token))
    assert r.status_code == 200 and r.json()["state"] == "invited"
    done = await gateway.consent(ALICE)
    assert "You accepted" in done.text


async def test_reminders_renew_completion_and_45_day_visibility(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = await gateway.active_agreement(token, CENTERPOINT, "MTR-4", CAROL)
    auth = gateway.auth(token)
    ends = datetime.fromisoformat(
        (await gateway.client.get(f"/v1/agreements/{aid}", headers=auth)).json()["ends_at"])

    # 31 days before the end: nothing; 30 days before: the first reminder; 7 days: the second.
    gateway.clock.advance(ends - gateway.clock.now() - timedelta(days=31))
    assert (await gateway.run_timers())["reminded"] == 0
    gateway.clock.advance(timedelta(days=1, seconds=1))
    assert (await gateway.run_timers())["reminded"] == 1
    assert (await gateway.run_timers())["reminded"] == 0  # once per threshold
    assert "ends on" in gateway.mails_to(CAROL)[-1]["Subject"]

    # Renew for 3 months with fresh consent; nothing changes until the customer accepts.
    r = await gateway.client.post(f"/v1/agreements/{aid}/renew", headers=auth,
                                  json={"duration_months": 3})
    assert r.status_code == 200 and r.json()["renewal_pending"] is True
    assert datetime.fromisoformat(r.json()["ends_at"]) == ends
    renewal_mail = gateway.mails_to(CAROL)[-1]
    assert "renew" in renewal_mail["Subject"]
    page = await gateway.client.get(gateway.link(renewal_mail, "/consent/"))
    assert "renews your existing agreement" in page.text and "3 months" in page.text
    done = await gateway.consent(CAROL)
    assert "renewed" in done.text
    body = (await gateway.client.get(f"/v1/agreements/{aid}", headers=auth)).json()
    new_ends = datetime.fromisoformat(body["ends_at"])
    assert body["state"] == "active" and body["renewal_pending"] is False
    assert new_ends > ends and body["duration_months"] == 3

    # The term runs out: completed; access stops; visible for 45 days, then gone.
    gateway.clock.advance(new_ends - gateway.clock.now() + timedelta(seconds=1))
    r = await gateway.client.get(f"/v1/premises/{CENTERPOINT}", headers=auth)
    assert r.status_code == 404  # even before the timer marks it completed
    assert (await gateway.run_timers())["completed"] == 1
    body = (await gateway.client.get(f"/v1/agreements/{aid}", headers=auth)).json()
    assert body["state"] == "completed"
    gateway.clock.advance(timedelta(days=44))
    listed = (await gateway.client.get("/v1/agreements", headers=auth)).json()["items"]
    assert [a["id"] for a in listed] == [aid]
    gateway.clock.advance(timedelta(days=2))
    assert (await gateway.client.get("/v1/agreements", headers=auth)).json()["items"] == []
    assert (await gateway.client.get(f"/v1/agreements/{aid}", headers=auth)).status_code == 404
    # Operators keep the record.
    r = await gateway.client.get(f"/v1/agreements/{aid}", headers=gateway.op)
    assert r.status_code == 200 and r.json()["state"] == "completed"


async def test_renewal_declined_keeps_the_agreement(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = await gateway.active_agreement(token, ONCOR, "MTR-1", ALICE)
    auth = gateway.auth(token)
    before = (await gateway.client.get(f"/v1/agreements/{aid}", headers=auth)).json()
    r = await gateway.client.post(f"/v1/agreements/{aid}/renew", headers=auth,
                                  json={"duration_months": 24})
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "duration_not_allowed"
    await gateway.client.post(f"/v1/agreements/{aid}/renew", headers=auth,
                              json={"duration_months": 12})
    done = await gateway.consent(ALICE, "reject")
    assert "declined the renewal" in done.text
    after = (await gateway.client.get(f"/v1/agreements/{aid}", headers=auth)).json()
    assert after["state"] == "active" and after["ends_at"] == before["ends_at"]


async def test_third_party_terminates_and_customer_is_told(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = await gateway.active_agreement(token, ONCOR, "MTR-1", ALICE)
    auth = gateway.auth(token)
    r = await gateway.client.post(f"/v1/agreements/{aid}/terminate", headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "terminated_by_third_party"
    assert "has ended" in gateway.mails_to(ALICE)[-1]["Subject"]
    assert (await gateway.client.get(f"/v1/premises/{ONCOR}", headers=auth)).status_code == 404
    r = await gateway.client.post(f"/v1/agreements/{aid}/terminate", headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "already_ended"
    # The customer's termination link is void now.
    end_link = gateway.link(
        next(m for m in gateway.mails_to(ALICE) if "You accepted" in m["Subject"]),
        "/agreements/terminate/")
    assert (await gateway.client.get(end_link)).status_code == 404


async def test_system_terminates_on_move_out_and_on_removal(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    a1 = await gateway.active_agreement(token, ONCOR, "MTR-1", ALICE)
    a2 = await gateway.active_agreement(token, CENTERPOINT, "MTR-4", CAROL)
    auth = gateway.auth(token)
    r = await gateway.client.post(f"/v1/premises/{ONCOR}/move-out", headers=gateway.op)
    assert r.status_code == 204
    body = (await gateway.client.get(f"/v1/agreements/{a1}", headers=auth)).json()
    assert body["state"] == "terminated_by_system" and "moved out" in body["end_reason"]
    r = await gateway.client.delete(f"/v1/premises/{CENTERPOINT}", headers=gateway.op)
    assert r.status_code == 204
    body = (await gateway.client.get(f"/v1/agreements/{a2}", headers=auth)).json()
    assert body["state"] == "terminated_by_system" and "removed" in body["end_reason"]
    assert (await gateway.client.get(f"/v1/premises/{CENTERPOINT}", headers=auth)).status_code \
        == 404


async def test_reimport_with_new_customer_ends_agreements(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = await gateway.active_agreement(token, ONCOR, "MTR-1", ALICE)
    report = await gateway.load_premises(
        "esi_id,meter_number,customer_email,se_version\n"
        f"{ONCOR},MTR-1,newtenant@example.test,1.1\n")
    assert report["updated"] == 1 and report["agreements_ended"] == 1
    body = (await gateway.client.get(f"/v1/agreements/{aid}", headers=gateway.auth(token))).json()
    assert body["state"] == "terminated_by_system"


async def test_expired_invitation_resend_is_revalidated(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = (await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1")], email=ALICE)).json()["id"]
    gateway.clock.advance(timedelta(days=31))
    await gateway.run_timers()
    assert (await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1")], email=ALICE)).status_code \
        == 201
    r = await gateway.client.post(f"/v1/agreements/{aid}/resend", headers=gateway.auth(token))
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "duplicate_active_agreement"


async def test_double_click_has_one_winner(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = await gateway.active_agreement(token, ONCOR, "MTR-1", ALICE)
    await gateway.client.post(f"/v1/agreements/{aid}/renew", headers=gateway.auth(token),
                              json={"duration_months": 6})
    link = gateway.link(gateway.mails_to(ALICE)[-1], "/consent/")
    mails_before = len(gateway.mails_to(ALICE))
    answers = await asyncio.gather(*(gateway.client.post(link, data={"decision": "accept"})
                                     for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [200, 404, 404, 404]
    assert len(gateway.mails_to(ALICE)) == mails_before + 1  # one confirmation
