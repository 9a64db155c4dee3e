"""The remaining roles' main tasks in a real headless Chromium (Debian's package, Playwright), with
JavaScript off and on, and axe-core on every page reached, in English and Spanish (no serious or
critical violation): a third party signs in by a one-time link and ends an agreement, a second
party's session tries the first one's ids; a field technician sees provisioning in progress and
provisions a device from the form; an operator sees a route's breaker open after its head-end
went away. tests/gateway/test_pages_browser.py covers the customer and the token sign-in."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from sandbox.ports import free_port
from tests.adapters.gateway_rig import gateway_with_headends
from tests.gateway.conftest import ONCOR, ONCOR_2, ONCOR_EAST, Gateway, install_code
from tests.gateway.test_pages_browser import ARGS, CHROMIUM, Axe
from tests.pipeline.conftest import running_stack

ALICE, BOB = "alice@example.test", "bob@example.test"
ACME_CONTACT = "api@acme.test"
DEVICE = "00124B0000A0A0E1"
LINK_PATH = "/dashboard/sign-in/link/"
JS = pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])


async def _launch(pw: Any) -> Browser:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    browser: Browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    return browser


async def _submit(page: Page, role: str, name: str) -> None:
    await page.get_by_role(role, name=name).click()  # type: ignore[arg-type]
    await page.wait_for_load_state()


async def _spanish(page: Page) -> None:
    """The language switch every page carries."""
    await page.get_by_role("combobox", name="Language").select_option("es")
    await _submit(page, "button", "Change")
    assert await page.get_attribute("html", "lang") == "es"


async def _english(page: Page) -> None:
    await page.get_by_role("combobox", name="Idioma").select_option("en")
    await _submit(page, "button", "Cambiar")


async def _mail_link(gw: Gateway, to: str) -> str:
    for _ in range(200):
        mails = [m for m in gw.mails_to(to) if LINK_PATH in gw.body(m)]
        if mails:
            return gw.link(mails[-1], LINK_PATH)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no sign-in link mailed to {to}")


@JS
async def test_third_party_signs_in_by_link_and_ends_an_agreement(gateway: Gateway, javascript: bool) -> None:
    gw = gateway
    await gw.load_premises()
    _a, token_a = await gw.new_party("Acme", "111111111")
    _b, token_b = await gw.new_party("Bravo", "222222222")
    agreement = await gw.active_agreement(token_a, ONCOR, "MTR-1", ALICE, scopes=["text"])
    await gw.active_agreement(token_b, ONCOR_EAST, "MTR-3", BOB)
    r = await gw.client.post("/v1/han-requests", headers=gw.auth(token_a),
                             json={"kind": "text", "esi_ids": [ONCOR], "text": "Peak at 5 pm"})
    assert r.status_code == 202, r.text
    acme_request = r.json()["id"]
    async with async_playwright() as pw:
        browser = await _launch(pw)
        try:
            axe = await Axe.for_context(browser, javascript)
            context = await browser.new_context(java_script_enabled=javascript, locale="en-US")
            page = await context.new_page()
            await page.goto(f"{gw.base_url}/dashboard/sign-in")
            await axe.check(page, "/dashboard/sign-in (en)")
            await page.get_by_label("Contact email address").fill(ACME_CONTACT)
            await _submit(page, "button", "Email me a sign-in link")
            assert await page.get_by_role("heading", level=1).inner_text() == "Check your email"
            await axe.check(page, "/dashboard/sign-in/link (sent, en)")
            link = await _mail_link(gw, ACME_CONTACT)

            await page.goto(link)
            await axe.check(page, "/dashboard/sign-in/link/{token} (en)")
            await _spanish(page)  # the link page in Spanish too; opening it twice uses nothing
            await axe.check(page, "/dashboard/sign-in/link/{token} (es)")
            await _submit(page, "button", "Iniciar sesión con este enlace")
            assert page.url.endswith("/dashboard")
            await axe.check(page, "/dashboard (es, by link)")
            await _english(page)
            main = await page.inner_text("main")
            assert "Dashboard of Acme" in main and "Bravo" not in main and BOB not in main
            await _submit(page, "button", f"End agreement {agreement}")
            assert f"Agreement {agreement} ended." in await page.get_by_role("status").inner_text()
            await axe.check(page, "/dashboard (after ending, en)")
            cookies = await context.cookies()
            session = next(c for c in cookies if c["name"] == "hangw_session")
            assert session["httpOnly"] and session["sameSite"] == "Strict"

            # The same link in another browser: used already.
            other = await browser.new_context(java_script_enabled=javascript)
            again = await other.new_page()
            await again.goto(link)
            await _submit(again, "button", "Sign in with this link")
            assert await again.get_by_role("heading", level=1).inner_text() == "Link not valid"
            await axe.check(again, "/dashboard/sign-in/link/{token} (used, en)")
            await _spanish(again)
            await axe.check(again, "/dashboard/sign-in/link/{token} (es, after the switch: the button page again)")
            await again.goto(f"{gw.base_url}/dashboard/sign-in")
            await axe.check(again, "/dashboard/sign-in (es)")
            await again.get_by_label("Correo electrónico de contacto").fill("nobody@example.test")
            await _submit(again, "button", "Envíenme un enlace para iniciar sesión")
            await axe.check(again, "/dashboard/sign-in/link (sent, es)")
            await _english(again)

            # A second party signs in and tries the first one's ids: nothing of Acme's shows.
            await again.goto(f"{gw.base_url}/dashboard/sign-in")
            await again.get_by_label("API token").fill(token_b)
            await _submit(again, "button", "Sign in")
            assert "Dashboard of Bravo" in await again.inner_text("main")
            answer = await again.goto(f"{gw.base_url}/dashboard/requests/{acme_request}")
            assert answer is not None and answer.status == 404
            seen = await again.content()
            assert "Acme" not in seen and "Peak at 5 pm" not in seen and ALICE not in seen
            await other.close()
        finally:
            await browser.close()
    r = await gw.client.get(f"/v1/agreements/{agreement}", headers=gw.auth(token_a))
    assert r.json()["state"] == "terminated_by_third_party"


async def _technician(gw: Gateway, esi_id: str) -> str:
    r = await gw.client.post("/v1/technicians", headers=gw.op, json={"name": "Tex", "email": "tex@example.test"})
    tech_id = r.json()["id"]
    assert (await gw.client.post(f"/v1/technicians/{tech_id}/assignments", headers=gw.op,
                                 json={"esi_id": esi_id})).status_code == 204
    r = await gw.client.post(f"/v1/technicians/{tech_id}/credentials", headers=gw.op, json={})
    token: str = r.json()["token"]
    return token


async def _sign_in(context: BrowserContext, base_url: str, token: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{base_url}/dashboard/sign-in")
    await page.get_by_label("API token").fill(token)
    await _submit(page, "button", "Sign in")
    return page


@JS
async def test_technician_sees_provisioning_and_provisions_from_the_form(gateway: Gateway, javascript: bool) -> None:
    gw = gateway
    await gw.load_premises()
    _a, token_a = await gw.new_party("Acme", "111111111")
    await gw.active_agreement(token_a, ONCOR_2, "MTR-2", ALICE, kind="in_home_device")
    r = await gw.client.post(f"/v1/premises/{ONCOR_2}/devices", headers=gw.auth(token_a), json={
        "eui64": DEVICE, "install_code": install_code(21), "device_type": "thermostat"})
    assert r.status_code == 201, r.text
    tech = await _technician(gw, ONCOR_2)
    async with async_playwright() as pw:
        browser = await _launch(pw)
        try:
            axe = await Axe.for_context(browser, javascript)
            context = await browser.new_context(java_script_enabled=javascript)
            page = await _sign_in(context, gw.base_url, tech)
            assert page.url.endswith("/field")
            assert await page.get_by_role("heading", level=1).inner_text() == "Field view"
            progress = await page.inner_text("#in-progress + table")
            assert DEVICE in progress and "provision_requested" in progress
            assert ONCOR_EAST not in await page.inner_text("main")
            await axe.check(page, "/field (en)")
            # A typo in the install code: said at the field, nothing stored.
            await page.get_by_label("EUI-64 (16 hex digits)").fill("00124B0000A0A0E2")
            await page.get_by_label("Install code (as printed)").fill(install_code(22)[:-2] + "FF")
            await _submit(page, "button", f"Provision device at {ONCOR_2}")
            assert await page.get_attribute(f"#install_code-{ONCOR_2}", "aria-invalid") == "true"
            await axe.check(page, "/field (install code refused, en)")
            await page.get_by_label("Install code (as printed)").fill(install_code(22))
            await _submit(page, "button", f"Provision device at {ONCOR_2}")
            assert "00124B0000A0A0E2" in await page.get_by_role("status").inner_text()
            assert "00124B0000A0A0E2" in await page.inner_text("#in-progress + table")
            await _spanish(page)
            assert await page.get_by_role("heading", level=1).inner_text() == "Vista de campo"
            await axe.check(page, "/field (es)")
        finally:
            await browser.close()
    r = await gw.client.get(f"/v1/premises/{ONCOR_2}/devices/00124B0000A0A0E2", headers=gw.op)
    assert r.status_code == 200 and r.json()["status"] == "provision_requested"


@JS
async def test_operator_sees_the_breaker_open_after_the_headend_fails(tmp_path: Path, javascript: bool) -> None:
    """TNMP's binary head-end (TCP) stops; a text to one of its premises fails to connect once and
    the breaker (breaker_failures = 1, a long reset) opens: the operator's page says so, with the
    failure, and the queue keeps the delivery."""
    profiles = {"tnmp": {"breaker_failures": 1, "breaker_reset_s": 600, "retries": 0}}
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary"}, meters=1, profiles=profiles) as rig:
        esi = rig.fleets["tnmp"].esi_id(0)
        _p, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, [esi], scopes=["text"])
        # The head-end goes away (for longer than the test: the breaker's reset is long anyway).
        outage = asyncio.create_task(rig.headends["tnmp"].down_for(120))
        await asyncio.sleep(0.2)
        r = await rig.gw.client.post("/v1/han-requests", headers=rig.gw.auth(token),
                                     json={"kind": "text", "esi_ids": [esi], "text": "Peak at 5 pm"})
        assert r.status_code == 202, r.text
        async with async_playwright() as pw:
            browser = await _launch(pw)
            try:
                axe = await Axe.for_context(browser, javascript)
                context = await browser.new_context(java_script_enabled=javascript)
                page = await _sign_in(context, rig.gw.base_url, rig.gw.operator_token)
                assert page.url.endswith("/operator")
                for _ in range(100):  # the dispatcher's first attempt opens the breaker
                    row = await page.inner_text("#route-health tbody")
                    if "open" in row.split():
                        break
                    await asyncio.sleep(0.1)
                    await page.reload()
                row = await page.inner_text("#route-health tbody")
                assert "tnmp" in row and "open" in row.split(), row
                assert "none" not in row  # a last failure is shown, with its reason
                await axe.check(page, "/operator (breaker open, en)")
                await _spanish(page)
                assert "abierto" in (await page.inner_text("#route-health tbody")).split()
                await axe.check(page, "/operator (breaker open, es)")
            finally:
                await browser.close()
                outage.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await outage


@JS
async def test_spanish_customer_consents_and_ends_in_spanish(gateway: Gateway, javascript: bool) -> None:
    """The consent and termination pages of an agreement whose customer chose Spanish, and the same
    consent page in English (the visitor's language switch cookie): axe in both languages."""
    gw = gateway
    await gw.load_premises()
    _a, token = await gw.new_party("Acme", "111111111")
    r = await gw.client.post("/v1/agreements", headers=gw.auth(token), json={
        "kind": "in_home_device_services", "scopes": ["text"], "customer_language": "es",
        "premises": [{"esi_id": ONCOR, "meter_number": "MTR-1"}], "customer_email": ALICE, "duration_months": 6})
    assert r.status_code == 201, r.text
    consent = gw.link(gw.mails_to(ALICE)[-1], "/consent/")
    async with async_playwright() as pw:
        browser = await _launch(pw)
        try:
            axe = await Axe.for_context(browser, javascript)
            context = await browser.new_context(java_script_enabled=javascript, locale="en-US")
            page = await context.new_page()
            await page.goto(consent)
            assert await page.get_attribute("html", "lang") == "es"
            await axe.check(page, "/consent/{token} (es)")
            await context.add_cookies([{"name": "hangw_lang", "value": "en", "url": gw.base_url}])
            await page.reload()
            assert await page.get_attribute("html", "lang") == "en"
            await axe.check(page, "/consent/{token} (en)")
            await context.clear_cookies()
            await page.reload()
            await _submit(page, "button", "Aceptar")
            assert await page.get_by_role("heading", level=1).inner_text() == "Consentimiento otorgado"
            await axe.check(page, "/consent/{token} (accepted, es)")
            await page.goto(gw.link(gw.mails_to(ALICE)[-1], "/agreements/terminate/"))
            await axe.check(page, "/agreements/terminate/{token} (es)")
            await context.add_cookies([{"name": "hangw_lang", "value": "en", "url": gw.base_url}])
            await page.reload()
            assert await page.get_attribute("html", "lang") == "en"
            await axe.check(page, "/agreements/terminate/{token} (en)")
            await context.clear_cookies()
            await page.reload()
            await _submit(page, "button", "Terminar este acuerdo ahora")
            assert await page.get_by_role("heading", level=1).inner_text() == "Acuerdo terminado"
            await axe.check(page, "/agreements/terminate/{token} (ended, es)")
            await page.goto(consent)  # used: the same plain answer, in the browser's language
            assert await page.get_by_role("heading", level=1).inner_text() == "Link not valid"
            await axe.check(page, "/consent/{token} (not valid, en)")
        finally:
            await browser.close()


@JS
async def test_third_party_reads_the_chart_redelivers_dead_letters_and_renews(tmp_path: Path, javascript: bool) -> None:
    """The rest of the dashboard, in the browser: the SVG chart (an image with its name, and its numbers
    in a table), a webhook's dead letters redelivered one and all, a renewal asked for."""
    closed = free_port()  # nothing listens there: every event fails and, at one attempt, dies
    async with running_stack(tmp_path / "d", pipeline={"webhook_max_attempts": 1}) as s:
        _a, token = await s.gw.new_party("Acme", "111111111")
        esi = s.premises[0].esi_id
        agreement = await s.customer(token, [esi])
        hook = (await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token),
                                       json={"url": f"http://127.0.0.1:{closed}/hook"})).json()["id"]
        rid = (await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "hook down",
                                        "confirmation_required": True})).json()["id"]

        async def dead_and_confirmed() -> list[dict[str, Any]] | None:
            r = await s.gw.client.get(f"/v1/webhooks/{hook}/dead-letters", headers=s.gw.auth(token))
            devices = (await s.summary(token, rid))["devices_by_state"]
            items: list[dict[str, Any]] = r.json()["items"]
            return items if items and devices.get("confirmed") else None
        letters = await s.eventually(dead_and_confirmed, timeout=20, advance=5)
        async with async_playwright() as pw:
            browser = await _launch(pw)
            try:
                axe = await Axe.for_context(browser, javascript)
                context = await browser.new_context(java_script_enabled=javascript)
                page = await _sign_in(context, s.gw.base_url, token)
                chart = page.get_by_role("img", name="The last 24 hours")
                assert await chart.count() == 1
                await page.get_by_text("The numbers per hour").click()  # <details>: opens without JavaScript
                numbers = await page.inner_text("table:has(caption:text('Deliveries and device answers per hour'))")
                assert any(line.split("\t")[1:] == ["1", "1"] for line in numbers.splitlines()), numbers
                await axe.check(page, "/dashboard (chart, dead letters, en)")
                await _submit(page, "button", f"Redeliver event {letters[0]['id']}")
                assert "1 dead letter(s) queued" in await page.get_by_role("status").inner_text()
                await page.goto(f"{s.gw.base_url}/dashboard")
                await _submit(page, "button", f"Redeliver every dead letter of webhook {hook}")
                assert "queued to be sent again" in await page.get_by_role("status").inner_text()
                await page.get_by_label("Months").first.select_option("6")
                await _submit(page, "button", f"Ask to renew {agreement}")
                assert f"Renewal request for agreement {agreement}" in await page.get_by_role("status").inner_text()
                await _spanish(page)
                assert await page.get_by_role("img", name="Las últimas 24 horas").count() == 1
                await axe.check(page, "/dashboard (chart, dead letters, es)")
            finally:
                await browser.close()
