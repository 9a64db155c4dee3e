"""Over real HTTP: a third party's one-time sign-in link (mailed to its contact address only, the
same answer for every address, stored as a hash, used once, short-lived, the same session cookie
as a token sign-in, a second party's ids refused), and the field technician's view (their
assigned premises only, provisioning from the form through the API's checks)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from gateway.store.parties import hash_token
from gateway.store.schema import page_sign_in_links, parties
from tests.gateway.conftest import ONCOR, ONCOR_2, ONCOR_EAST, Gateway, install_code
from tests.gateway.pages_helpers import browser, csrf_of, text_of

ALICE, BOB = "alice@example.test", "bob@example.test"
ACME_CONTACT = "api@acme.test"  # the contact address gw.new_party gives "Acme"
DEVICE = "00124B0000A0A0D1"
LINK_PATH = "/dashboard/sign-in/link/"


async def _world(gw: Gateway) -> tuple[str, str, int, int]:
    await gw.load_premises()
    _a, token_a = await gw.new_party("Acme", "111111111")
    _b, token_b = await gw.new_party("Bravo", "222222222")
    acme_agreement = await gw.active_agreement(token_a, ONCOR, "MTR-1", ALICE, scopes=["text"])
    await gw.active_agreement(token_a, ONCOR_2, "MTR-2", ALICE, kind="in_home_device")
    bravo_agreement = await gw.active_agreement(token_b, ONCOR_EAST, "MTR-3", BOB)
    r = await gw.client.post(f"/v1/premises/{ONCOR_2}/devices", headers=gw.auth(token_a), json={
        "eui64": DEVICE, "install_code": install_code(11), "device_type": "thermostat"})
    assert r.status_code == 201, r.text
    return token_a, token_b, acme_agreement, bravo_agreement


async def _mail_link(gw: Gateway, to: str, count: int) -> str:
    """The newest sign-in link mailed to `to`, once `count` such mails exist (sent after the answer)."""
    for _ in range(200):
        mails = [m for m in gw.mails_to(to) if LINK_PATH in gw.body(m)]
        if len(mails) >= count:
            return gw.link(mails[-1], LINK_PATH)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no sign-in link mail #{count} to {to}")


async def test_sign_in_link_is_mailed_to_the_contact_only_used_once_and_short_lived(gateway: Gateway) -> None:
    token_a, _tb, acme_agreement, bravo_agreement = await _world(gateway)
    async with browser(gateway) as visitor:
        form = await visitor.get("/dashboard/sign-in")
        assert form.status_code == 200 and "Email me a sign-in link" in form.text
        answers = []
        for email in ("nobody@example.test", ALICE, ACME_CONTACT):  # unknown, a customer, the party's contact
            r = await visitor.post("/dashboard/sign-in/link", data={"email": email, "csrf_token": csrf_of(form)})
            assert r.status_code == 200
            answers.append(text_of(r).replace(email, "EMAIL"))
        assert answers[0] == answers[1] == answers[2]
        bad = await visitor.post("/dashboard/sign-in/link",
                                 data={"email": "not an address", "csrf_token": csrf_of(form)})
        assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text and "name@example.com" in bad.text
        assert (await visitor.post("/dashboard/sign-in/link", data={"email": ACME_CONTACT})).status_code == 403
    link = await _mail_link(gateway, ACME_CONTACT, 1)
    await asyncio.sleep(0.3)
    assert not [m for m in gateway.mails_to(ALICE) + gateway.mails_to("nobody@example.test")
                if LINK_PATH in gateway.body(m)]
    token = link.rsplit("/", 1)[1]
    async with gateway.store.engine.connect() as conn:  # only the hash is kept
        rows = (await conn.execute(sa.select(page_sign_in_links))).all()
    assert [r.token_hash for r in rows] == [hash_token(token)]
    assert all(token not in str(v) for r in rows for v in r)

    async with browser(gateway) as acme:
        for _ in range(2):  # opening the link (a mail scanner would) uses nothing
            shown = await acme.get(link)
            assert shown.status_code == 200 and "Sign in with this link" in shown.text
        assert (await acme.post(link, data={})).status_code == 403  # CSRF
        r = await acme.post(link, data={"csrf_token": csrf_of(shown)})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and token.lower() not in cookie
        page = await acme.get("/dashboard")
        assert page.status_code == 200 and "Dashboard of Acme" in page.text and DEVICE in page.text
        assert "Bravo" not in page.text and BOB not in page.text and ONCOR_EAST not in page.text
        # Another party's ids answer as unknown ones do.
        foreign = await acme.post(f"/dashboard/agreements/{bravo_agreement}/terminate",
                                  data={"csrf_token": csrf_of(page)})
        assert foreign.status_code == 404 and "Bravo" not in foreign.text and BOB not in foreign.text
        # Its own: ended, as with a token sign-in.
        r = await acme.post(f"/dashboard/agreements/{acme_agreement}/terminate", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303
        state = (await gateway.client.get(f"/v1/agreements/{acme_agreement}", headers=gateway.auth(token_a))).json()
        assert state["state"] == "terminated_by_third_party"

    async with browser(gateway) as thief:  # used once: a second use (another browser) is refused
        shown = await thief.get(link)
        again = await thief.post(link, data={"csrf_token": csrf_of(shown)})
        assert again.status_code == 410 and "used already" in again.text
        assert (await thief.get("/dashboard")).headers.get("location") == "/dashboard/sign-in"
        garbage = await thief.post(LINK_PATH + "x" * 43, data={"csrf_token": csrf_of(shown)})
        assert garbage.status_code == 410

    # Short-lived: a link older than [pages] sign_in_link_minutes is refused.
    async with browser(gateway) as late:
        form = await late.get("/dashboard/sign-in")
        await late.post("/dashboard/sign-in/link", data={"email": ACME_CONTACT.upper(), "csrf_token": csrf_of(form)})
        old = await _mail_link(gateway, ACME_CONTACT.upper(), 1)
        gateway.clock.advance(timedelta(minutes=gateway.config.pages.sign_in_link_minutes + 1))
        shown = await late.get(old)
        assert (await late.post(old, data={"csrf_token": csrf_of(shown)})).status_code == 410

    # A session made with a link ends when the party is suspended.
    async with browser(gateway) as acme:
        form = await acme.get("/dashboard/sign-in")
        await acme.post("/dashboard/sign-in/link", data={"email": ACME_CONTACT, "csrf_token": csrf_of(form)})
        fresh = await _mail_link(gateway, ACME_CONTACT, 2)
        shown = await acme.get(fresh)
        assert (await acme.post(fresh, data={"csrf_token": csrf_of(shown)})).status_code == 303
        assert (await acme.get("/dashboard")).status_code == 200
        async with gateway.store.engine.begin() as conn:
            await conn.execute(parties.update().where(parties.c.name == "Acme").values(status="suspended"))
        assert (await acme.get("/dashboard")).headers.get("location") == "/dashboard/sign-in"


async def _technician(gw: Gateway, esi_id: str) -> str:
    r = await gw.client.post("/v1/technicians", headers=gw.op, json={"name": "Tex", "email": "tex@example.test"})
    tech_id = r.json()["id"]
    r = await gw.client.post(f"/v1/technicians/{tech_id}/assignments", headers=gw.op, json={"esi_id": esi_id})
    assert r.status_code == 204, r.text
    r = await gw.client.post(f"/v1/technicians/{tech_id}/credentials", headers=gw.op, json={})
    token: str = r.json()["token"]
    return token


async def test_field_view_shows_assigned_premises_and_provisions_from_the_form(gateway: Gateway) -> None:
    token_a, _tb, _x, _y = await _world(gateway)
    tech = await _technician(gateway, ONCOR_2)
    async with browser(gateway) as tex:
        form = await tex.get("/dashboard/sign-in")
        r = await tex.post("/dashboard/sign-in", data={"token": tech, "csrf_token": csrf_of(form)})
        assert r.status_code == 303 and r.headers["location"] == "/field"
        page = await tex.get("/field")
        assert page.status_code == 200, page.text
        seen = text_of(page)
        assert "Field view" in seen and ONCOR_2 in seen and DEVICE in seen and "provision_requested" in seen
        for foreign in (ONCOR_EAST, ONCOR, BOB, "Bravo"):
            assert foreign not in page.text, foreign
        # A technician's session opens neither the dashboard nor the operator's view.
        assert (await tex.get("/dashboard")).headers.get("location") == "/dashboard/sign-in"
        assert (await tex.get("/operator")).headers.get("location") == "/dashboard/sign-in"

        url = f"/field/premises/{ONCOR_2}/devices"
        fields = {"eui64": "00:12:4B:00:00:A0:A0:D2", "device_type": "in_home_display", "join_window_days": "1"}
        wrong_crc = install_code(12)[:-2] + ("FF" if install_code(12).endswith("00") else "00")
        bad = await tex.post(url, data={**fields, "install_code": wrong_crc,
                                        "csrf_token": csrf_of(page)})
        assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text and "CRC" in bad.text
        short = await tex.post(url, data={**fields, "eui64": "12", "install_code": install_code(12),
                                          "csrf_token": csrf_of(page)})
        assert short.status_code == 400 and 'aria-invalid="true"' in short.text
        assert (await tex.post(url, data={**fields, "install_code": install_code(12)})).status_code == 403
        ok = await tex.post(url, data={**fields, "install_code": install_code(12), "csrf_token": csrf_of(page)})
        assert ok.status_code == 303 and ok.headers["location"].startswith("/field?done=00124B0000A0A0D2")
        page = await tex.get(ok.headers["location"])
        assert "00124B0000A0A0D2" in text_of(page) and 'role="status"' in page.text
        # The API sees the same device (the form went through POST /v1/premises/…/devices' code).
        r = await gateway.client.get(f"/v1/premises/{ONCOR_2}/devices/00124B0000A0A0D2", headers=gateway.op)
        assert r.status_code == 200 and r.json()["status"] == "provision_requested"
        # A premise not assigned to the technician: refused as an unknown one, nothing stored.
        other = await tex.post(f"/field/premises/{ONCOR_EAST}/devices",
                               data={**fields, "eui64": "00124B0000A0A0D3", "install_code": install_code(13),
                                     "csrf_token": csrf_of(page)})
        assert other.status_code == 404
        r = await gateway.client.get(f"/v1/premises/{ONCOR_EAST}/devices/00124B0000A0A0D3", headers=gateway.op)
        assert r.status_code == 404
    # A third party's session does not open the field view.
    async with browser(gateway) as acme:
        form = await acme.get("/dashboard/sign-in")
        await acme.post("/dashboard/sign-in", data={"token": token_a, "csrf_token": csrf_of(form)})
        assert (await acme.get("/field")).headers.get("location") == "/dashboard/sign-in"
