"""The customer's page and the third parties' dashboard over real HTTP (tests/gateway/test_pages_browser.py
drives them in Chromium): who sees what, CSRF, links that are altered or too old, sessions, Spanish."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta

import pytest

from gateway.pages.i18n import LANGUAGES, LOCALE_DIR
from tests.gateway.conftest import ONCOR, ONCOR_2, ONCOR_EAST, Gateway, install_code
from tests.gateway.pages_helpers import browser, csrf_of, customer_link, text_of

ALICE, BOB = "alice@example.test", "bob@example.test"
DEVICE = "00124B0000A0A0B7"


async def _world(gw: Gateway) -> tuple[str, str, int, int]:
    """Acme serves Alice (two agreements, a device), Bravo serves Bob: tokens and Alice's agreement ids."""
    await gw.load_premises()
    _a, token_a = await gw.new_party("Acme", "111111111")
    _b, token_b = await gw.new_party("Bravo", "222222222")
    services = await gw.active_agreement(token_a, ONCOR, "MTR-1", ALICE, scopes=["text"])
    devices = await gw.active_agreement(token_a, ONCOR_2, "MTR-2", ALICE, kind="in_home_device")
    await gw.active_agreement(token_b, ONCOR_EAST, "MTR-3", BOB)
    r = await gw.client.post(f"/v1/premises/{ONCOR_2}/devices", headers=gw.auth(token_a), json={
        "eui64": DEVICE, "install_code": install_code(7), "device_type": "thermostat"})
    assert r.status_code == 201, r.text
    return token_a, token_b, services, devices


async def test_customer_page_from_the_email_link_shows_theirs_and_nothing_of_others(gateway: Gateway) -> None:
    _ta, _tb, services, devices = await _world(gateway)
    # Every agreement email carries the link; the newest is the confirmation of the second one.
    assert all("/my/" in gateway.body(m) for m in gateway.mails_to(ALICE))
    link = customer_link(gateway, ALICE)
    async with browser(gateway) as alice:
        page = await alice.get(link)
        assert page.status_code == 200, page.text
        seen = text_of(page)
        for expected in (str(services), str(devices), "Acme", ONCOR, ONCOR_2, DEVICE, "thermostat",
                         "Active", "text messages"):
            assert expected in seen, expected
        for foreign in ("Bravo", ONCOR_EAST, BOB, "MTR-3"):
            assert foreign not in page.text, foreign
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # http here
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"

    # Bob's link shows Bob's, none of Alice's.
    async with browser(gateway) as bob:
        page = await bob.get(customer_link(gateway, BOB))
        assert page.status_code == 200
        assert "Bravo" in page.text and ONCOR_EAST in page.text
        for foreign in ("Acme", ONCOR, ONCOR_2, DEVICE, ALICE):
            assert foreign not in page.text, foreign
        # …and Bob cannot end Alice's agreement through his own link, with a valid form token.
        r = await bob.post(f"{customer_link(gateway, BOB)}/agreements/{services}/terminate",
                           data={"csrf_token": csrf_of(page)})
        assert r.status_code == 404 and "Nothing was changed" in r.text
        assert "Acme" not in r.text
    r = await gateway.client.get(f"/v1/agreements/{services}", headers=gateway.auth(_ta))
    assert r.json()["state"] == "active"


async def test_customer_terminates_with_csrf_and_is_refused_without(gateway: Gateway) -> None:
    token_a, _tb, services, _devices = await _world(gateway)
    link = customer_link(gateway, ALICE)
    async with browser(gateway) as alice:
        page = await alice.get(link)
        url = f"{link}/agreements/{services}/terminate"
        for data in ({}, {"csrf_token": "forged"}):  # no token, a wrong token: refused, nothing ends
            r = await alice.post(url, data=data)
            assert r.status_code == 403, r.text
            assert "Nothing was changed" in r.text
        async with browser(gateway) as attacker:  # another browser's valid token is not Alice's
            other = csrf_of(await attacker.get("/my"))
            assert (await alice.post(url, data={"csrf_token": other})).status_code == 403
        r = await gateway.client.get(f"/v1/agreements/{services}", headers=gateway.auth(token_a))
        assert r.json()["state"] == "active"

        r = await alice.post(url, data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303 and r.headers["location"].endswith(f"?ended={services}")
        page = await alice.get(r.headers["location"])
        assert f"Agreement number {services} has ended" in text_of(page)
        assert "Ended by the customer" in text_of(page)
        again = await alice.post(url, data={"csrf_token": csrf_of(page)})
        assert again.status_code == 404
    r = await gateway.client.get(f"/v1/agreements/{services}", headers=gateway.auth(token_a))
    assert r.json()["state"] == "terminated_by_customer"


async def test_altered_and_expired_links_are_refused(gateway: Gateway) -> None:
    await _world(gateway)
    link = customer_link(gateway, ALICE)
    token = link.rsplit("/", 1)[1]
    async with browser(gateway) as visitor:
        flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
        for bad in (flipped, token[:-3], "not-a-link", token + "x"):
            r = await visitor.get(f"/my/{bad}")
            assert r.status_code == 404, (bad, r.status_code)
            assert "Link not valid" in r.text and ALICE not in r.text and ONCOR not in r.text
        gateway.clock.advance(timedelta(days=gateway.config.pages.customer_link_days, seconds=1))
        r = await visitor.get(link)
        assert r.status_code == 410 and "Link expired" in r.text and ONCOR not in r.text


async def test_link_request_form_answers_alike_and_mails_only_known_addresses(gateway: Gateway) -> None:
    await gateway.load_premises()  # Alice is a premise's contact; nobody has an agreement yet
    async with browser(gateway) as visitor:
        form = await visitor.get("/my")
        assert form.status_code == 200
        answers = []
        for email in ("nobody@example.test", ALICE):
            r = await visitor.post("/my", data={"email": email, "csrf_token": csrf_of(form)})
            assert r.status_code == 200
            answers.append(text_of(r).replace(email, "EMAIL"))
        assert answers[0] == answers[1]
        bad = await visitor.post("/my", data={"email": "not an address", "csrf_token": csrf_of(form)})
        assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text and "name@example.com" in bad.text
        assert (await visitor.post("/my", data={"email": ALICE})).status_code == 403
    # The lookup and the mail run after each answer was sent: wait for Alice's (asked for last).
    for _ in range(200):
        if gateway.mails_to(ALICE):
            break
        await asyncio.sleep(0.05)
    [mail] = gateway.mails_to(ALICE)
    assert not gateway.mails_to("nobody@example.test")
    assert mail["Subject"] == "Your agreements and meter devices"
    # Asking again within 15 minutes sends nothing more (the answer is the same); later, one more.
    async with browser(gateway) as visitor:
        form = await visitor.get("/my")
        assert (await visitor.post("/my", data={"email": ALICE, "csrf_token": csrf_of(form)})).status_code == 200
        await asyncio.sleep(1.0)
        assert len(gateway.mails_to(ALICE)) == 1
        gateway.clock.advance(timedelta(minutes=16))
        form = await visitor.get("/my")
        await visitor.post("/my", data={"email": ALICE.upper(), "csrf_token": csrf_of(form)})
        for _ in range(200):
            if len(gateway.mails_to(ALICE.upper()) + gateway.mails_to(ALICE)) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(gateway.mails_to(ALICE.upper()) + gateway.mails_to(ALICE)) == 2
    async with browser(gateway) as alice:
        page = await alice.get(customer_link(gateway, ALICE))
        assert page.status_code == 200 and ONCOR in page.text and "No agreements" in page.text


async def test_spanish_by_accept_language_and_by_the_switch(gateway: Gateway) -> None:
    await _world(gateway)
    link = customer_link(gateway, ALICE)
    async with browser(gateway, **{"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}) as maria:
        page = await maria.get(link)
        assert '<html lang="es">' in page.text
        assert "Sus acuerdos y dispositivos" in page.text and "Activo" in page.text
        assert "Saltar al contenido principal" in page.text
        assert re.search(r"hasta el \d+ \w+ \d{4}", text_of(page)), text_of(page)  # Babel's Spanish date
    async with browser(gateway, **{"Accept-Language": "fr, en;q=0.1"}) as visitor:
        page = await visitor.get(link)
        assert '<html lang="en">' in page.text
        # The switch wins over the browser's languages, and is kept in a cookie.
        r = await visitor.post("/language", data={"lang": "es", "next": link.removeprefix(gateway.base_url),
                                                  "csrf_token": csrf_of(page)})
        assert r.status_code == 303 and r.headers["location"].startswith("/my/")
        assert "hangw_lang=es" in r.headers["set-cookie"]
        assert "Sus acuerdos" in (await visitor.get(r.headers["location"])).text
        r = await visitor.post("/language", data={"lang": "en", "next": "https://evil.example/",
                                                  "csrf_token": csrf_of(page)})
        assert r.headers["location"] == "/"  # never sent elsewhere
        assert (await visitor.post("/language", data={"lang": "en"})).status_code == 403
        r = await visitor.post("/language", data={"lang": "xx", "csrf_token": csrf_of(page)})
        assert r.status_code == 400 and "'xx'" in text_of(r)


async def test_dashboard_sign_in_session_actions_and_isolation(gateway: Gateway) -> None:
    token_a, token_b, services, _devices = await _world(gateway)
    async with browser(gateway) as acme:
        assert (await acme.get("/dashboard")).headers["location"] == "/dashboard/sign-in"
        form = await acme.get("/dashboard/sign-in")
        refused = await acme.post("/dashboard/sign-in", data={"token": "wrong", "csrf_token": csrf_of(form)})
        assert refused.status_code == 401 and 'aria-invalid="true"' in refused.text
        async with browser(gateway) as operator:  # an operator's token opens the operator's view
            op_form = await operator.get("/dashboard/sign-in")
            op = await operator.post("/dashboard/sign-in", data={"token": gateway.operator_token,
                                                                 "csrf_token": csrf_of(op_form)})
            assert op.status_code == 303 and op.headers["location"] == "/operator"
            assert (await operator.get("/dashboard")).headers.get("location") == "/dashboard/sign-in"
            view = await operator.get("/operator")
            assert view.status_code == 200 and "Operator view" in view.text and "provision_requested" in view.text
            assert DEVICE in view.text and "oncor" in view.text.lower()
        assert (await acme.post("/dashboard/sign-in", data={"token": token_a})).status_code == 403
        r = await acme.post("/dashboard/sign-in", data={"token": token_a, "csrf_token": csrf_of(form)})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        assert token_a not in r.headers["set-cookie"] and token_a not in r.headers["location"]
        page = await acme.get("/dashboard")
        assert page.status_code == 200, page.text
        # A third party's session does not open the operator's view.
        assert (await acme.get("/operator")).headers.get("location") == "/dashboard/sign-in"
        seen = text_of(page)
        assert "Dashboard of Acme" in seen and ALICE in seen and DEVICE in seen and str(services) in seen
        for foreign in ("Bravo", BOB, ONCOR_EAST):
            assert foreign not in page.text, foreign

        # Acme cannot end Bravo's agreement from its session: what an unknown one gets.
        bob_agreement = (await gateway.client.get("/v1/agreements", headers=gateway.auth(token_b))).json()["items"][0]
        foreign = await acme.post(f"/dashboard/agreements/{bob_agreement['id']}/terminate",
                                  data={"csrf_token": csrf_of(page)})
        unknown = await acme.post("/dashboard/agreements/9000000/terminate", data={"csrf_token": csrf_of(page)})
        assert foreign.status_code == unknown.status_code == 404
        assert "Bravo" not in foreign.text and BOB not in foreign.text

        # Renew and terminate its own: a CSRF token is needed, and the same domain rules apply.
        url = f"/dashboard/agreements/{services}/terminate"
        assert (await acme.post(url, data={})).status_code == 403
        r = await acme.post(f"/dashboard/agreements/{services}/renew",
                            data={"csrf_token": csrf_of(page), "duration_months": "12"})
        assert r.status_code == 303
        assert "renew" in gateway.mails_to(ALICE)[-1]["Subject"]
        r = await acme.post(url, data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303
        page = await acme.get(r.headers["location"])
        assert f"Agreement {services} ended." in text_of(page)
        again = await acme.post(url, data={"csrf_token": csrf_of(page)})
        assert again.status_code == 409 and "already" in again.text
        state = (await gateway.client.get(f"/v1/agreements/{services}", headers=gateway.auth(token_a))).json()
        assert state["state"] == "terminated_by_third_party"

        # Revoking the token ends the session at the next request.
        creds = (await gateway.client.get("/v1/parties", headers=gateway.op)).json()["items"]
        acme_id = next(p["id"] for p in creds if p["name"] == "Acme")
        listed = (await gateway.client.get(f"/v1/parties/{acme_id}/credentials", headers=gateway.op)).json()
        for cred in listed["items"]:
            await gateway.client.delete(f"/v1/credentials/{cred['id']}", headers=gateway.op)
        assert (await acme.get("/dashboard")).headers.get("location") == "/dashboard/sign-in"

    # A session cookie from Bravo's sign-in shows Bravo's data only; signing out ends it.
    async with browser(gateway) as bravo:
        form = await bravo.get("/dashboard/sign-in")
        await bravo.post("/dashboard/sign-in", data={"token": token_b, "csrf_token": csrf_of(form)})
        page = await bravo.get("/dashboard")
        assert "Bravo" in page.text and ALICE not in page.text and "Acme" not in page.text
        r = await bravo.post("/dashboard/sign-out", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303
        assert (await bravo.get("/dashboard")).status_code == 303


def test_catalogues_are_complete_and_compiled() -> None:
    """Every message has a Spanish translation, and the committed .mo is the compiled .po."""
    import io

    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    for lang in LANGUAGES[1:]:
        folder = LOCALE_DIR / lang / "LC_MESSAGES"
        with open(folder / "messages.po", "rb") as f:
            po = read_po(f, locale=lang)
        mo = read_mo(io.BytesIO((folder / "messages.mo").read_bytes()))
        with open(LOCALE_DIR / "messages.pot", "rb") as f:
            pot = read_po(f)
        ids = {m.id for m in pot if m.id}
        assert ids == {m.id for m in po if m.id}, "run bash scripts/i18n"
        def text(value: object) -> object:  # a plural's forms: a tuple in the .po, a list in the .mo
            return tuple(value) if isinstance(value, list | tuple) else value

        untranslated = [m.id for m in po if m.id and (not m.string or not all(text(m.string)) or m.fuzzy)]
        assert not untranslated, untranslated
        assert {text(m.id): text(m.string) for m in po if m.id} == {text(m.id): text(m.string) for m in mo if m.id}, \
            f"{folder}/messages.mo is older than its .po: run bash scripts/i18n compile"


async def test_session_expires_cookie_is_secure_behind_https_and_links_stay_out_of_logs(
        gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    token_a, _tb, _s, _d = await _world(gateway)
    async with browser(gateway) as acme:
        form = await acme.get("/dashboard/sign-in")
        await acme.post("/dashboard/sign-in", data={"token": token_a, "csrf_token": csrf_of(form)})
        assert (await acme.get("/dashboard")).status_code == 200
        gateway.clock.advance(timedelta(hours=gateway.config.pages.session_hours, seconds=1))
        r = await acme.get("/dashboard")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/sign-in"
        # The form's token died with the session: a late POST is refused.
        assert (await acme.post("/my", data={"email": ALICE, "csrf_token": csrf_of(form)})).status_code == 403

    link = customer_link(gateway, ALICE)
    with caplog.at_level(logging.INFO):
        async with browser(gateway) as alice:
            assert (await alice.get(link)).status_code == 200
    token = link.rsplit("/", 1)[1]
    assert not [r for r in caplog.records if token in r.getMessage() and not r.name.startswith("httpx")]

    gateway.config.server.public_url = "https://gateway.example"  # behind a TLS proxy
    async with browser(gateway) as visitor:
        r = await visitor.get("/my")
        assert "secure" in r.headers["set-cookie"].lower()
        r = await visitor.post("/language", data={"lang": "es", "csrf_token": csrf_of(r)})
        assert all("secure" in c.lower() for c in r.headers.get_list("set-cookie"))
