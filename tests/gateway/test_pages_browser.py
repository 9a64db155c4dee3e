"""The customer's page and the third party's dashboard in a real headless Chromium (Debian's package,
driven by Playwright), with JavaScript off and on: each role's main task end to end, and axe-core
(from npm, tests/a11y) run in every page reached — no serious or critical WCAG 2.1 A/AA violation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.gateway.conftest import ONCOR, ONCOR_2, ONCOR_EAST, Gateway, install_code
from tests.gateway.pages_helpers import customer_link
from tests.pipeline.conftest import running_stack

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).resolve().parents[1] / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
ALICE = "alice@example.test"
DEVICE = "00124B0000A0A0C3"
# WCAG 2.1 A and AA, and axe's best practices (landmarks, one h1, headings in order, …).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


class Axe:
    """axe-core run on pages; fails on a serious or critical violation and prints what it found.

    axe needs JavaScript (its run waits on timers): a page opened with JavaScript off is checked as
    its document, loaded into a page of a JavaScript-enabled context that has axe (the pages have no
    script of their own, so the document is the same either way). With JavaScript on, axe runs in
    the page itself, evaluated by the driver (past the page's Content-Security-Policy)."""

    def __init__(self, checker: Page | None) -> None:
        self.checker = checker

    @classmethod
    async def for_context(cls, browser: Browser, javascript: bool) -> Axe:
        assert AXE.exists(), f"{AXE} missing: npm ci --prefix tests/a11y (scripts/test does)"
        if javascript:
            return cls(None)
        context = await browser.new_context(java_script_enabled=True)
        await context.add_init_script(path=AXE)
        return cls(await context.new_page())

    async def check(self, page: Page, name: str) -> dict[str, Any]:
        target = page
        if self.checker is not None:
            target = self.checker
            await target.set_content(await page.content())
        elif not await page.evaluate("typeof window.axe !== 'undefined'"):
            await page.evaluate(AXE.read_text(encoding="utf-8"))
        result: dict[str, Any] = await target.evaluate(
            "opts => axe.run(document, opts).then(r => ({violations: r.violations.map(v => ({id: v.id, "
            "impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))})), passes: r.passes.length}))",
            {"runOnly": {"type": "tag", "values": AXE_TAGS}})
        bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
        print(f"axe {name}: {result['passes']} rules passed, violations "
              f"{json.dumps([(v['id'], v['impact']) for v in result['violations']])}")
        assert not bad, f"{name}: {json.dumps(bad, indent=1)}"
        return result


async def _world(gw: Gateway) -> tuple[str, int]:
    await gw.load_premises()
    _a, token_a = await gw.new_party("Acme Thermostats", "111111111")
    _b, token_b = await gw.new_party("Bravo Energy", "222222222")
    agreement = await gw.active_agreement(token_a, ONCOR, "MTR-1", ALICE, scopes=["text", "price"])
    await gw.active_agreement(token_a, ONCOR_2, "MTR-2", ALICE, kind="in_home_device")
    await gw.active_agreement(token_b, ONCOR_EAST, "MTR-3", "bob@example.test")
    r = await gw.invite(token_a, esi_ids=[(ONCOR_EAST, "MTR-3")], email="bob@example.test", scopes=["text"])
    assert r.status_code == 201, r.text  # an invitation waiting: Acme's dashboard can resend it
    r = await gw.client.post(f"/v1/premises/{ONCOR_2}/devices", headers=gw.auth(token_a), json={
        "eui64": DEVICE, "install_code": install_code(3), "device_type": "in_home_display"})
    assert r.status_code == 201, r.text
    r = await gw.client.post("/v1/han-requests", headers=gw.auth(token_a),
                             json={"kind": "text", "esi_ids": [ONCOR], "text": "Peak at 5 pm"})
    assert r.status_code == 202, r.text
    return token_a, agreement


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
async def test_customer_sees_everything_at_home_in_spanish_and_ends_an_agreement(
        gateway: Gateway, javascript: bool, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    _token, agreement = await _world(gateway)
    link = customer_link(gateway, ALICE)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            axe = await Axe.for_context(browser, javascript)
            context = await browser.new_context(java_script_enabled=javascript, locale="en-US")
            page = await context.new_page()
            # The form that mails the link: labelled, reachable by keyboard.
            await page.goto(f"{gateway.base_url}/my")
            await axe.check(page, "/my (link request form)")
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Skip to main content"
            await page.get_by_label("Email address").fill(ALICE)
            await page.get_by_role("button", name="Email me the link").click()
            await page.wait_for_load_state()
            assert await page.get_by_role("heading", level=1).inner_text() == "Check your email"
            await axe.check(page, "/my (sent)")

            response = await page.goto(link)
            assert response is not None and response.status == 200
            await axe.check(page, "/my/{link} (English)")
            main = await page.inner_text("main")
            assert "Acme Thermostats" in main and DEVICE in main and ONCOR_2 in main
            assert "Bravo" not in main and ONCOR_EAST not in main

            # Switch to Spanish with the form every page carries.
            await page.get_by_role("combobox", name="Language").select_option("es")
            await page.get_by_role("button", name="Change").click()
            await page.wait_for_load_state()
            assert await page.get_attribute("html", "lang") == "es"
            assert await page.get_by_role("heading", level=1).inner_text() == "Sus acuerdos y dispositivos"
            await axe.check(page, "/my/{link} (Spanish)")
            await page.screenshot(path=str(tmp_path / "customer-es.png"), full_page=True)

            await page.get_by_role("button", name=f"Terminar el acuerdo {agreement} con Acme Thermostats").click()
            await page.wait_for_load_state()
            status = await page.get_by_role("status").inner_text()
            assert f"El acuerdo número {agreement} terminó" in status
            assert "Terminado por el cliente" in await page.inner_text("main")
            await axe.check(page, "/my/{link} (after ending, Spanish)")
            await page.goto(f"{gateway.base_url}/my")  # the link request form in Spanish too
            assert await page.get_attribute("html", "lang") == "es"
            await axe.check(page, "/my (link request form, Spanish)")
        finally:
            await browser.close()
    r = await gateway.client.get(f"/v1/agreements/{agreement}", headers=gateway.auth(_token))
    assert r.json()["state"] == "terminated_by_customer"


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
async def test_third_party_signs_in_and_manages_its_agreements(
        gateway: Gateway, javascript: bool, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    token, agreement = await _world(gateway)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            axe = await Axe.for_context(browser, javascript)
            context = await browser.new_context(java_script_enabled=javascript)
            page = await context.new_page()
            await page.goto(f"{gateway.base_url}/dashboard")  # not signed in: to the sign-in form
            assert page.url.endswith("/dashboard/sign-in")
            await axe.check(page, "/dashboard/sign-in")
            await page.get_by_label("API token").fill("not-a-token")
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_load_state()
            assert await page.get_attribute("#token", "aria-invalid") == "true"
            await axe.check(page, "/dashboard/sign-in (refused)")
            await page.get_by_label("API token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_load_state()
            assert page.url.endswith("/dashboard") and token not in page.url
            assert all(token not in c["value"] for c in await context.cookies())
            await axe.check(page, "/dashboard")
            main = await page.inner_text("main")
            assert "Dashboard of Acme Thermostats" in main and DEVICE in main and "Bravo" not in main
            assert "text" in main and "Active (2)" in main
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            await page.get_by_role("button", name=f"End agreement {agreement}").click()
            await page.wait_for_load_state()
            assert f"Agreement {agreement} ended." in await page.get_by_role("status").inner_text()
            invited = page.get_by_role("button", name="Resend invitation")
            await invited.click()
            await page.wait_for_load_state()
            assert "sent again" in await page.get_by_role("status").inner_text()
            await axe.check(page, "/dashboard (after actions)")

            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_load_state()
            assert page.url.endswith("/dashboard/sign-in")
        finally:
            await browser.close()
    r = await gateway.client.get(f"/v1/agreements/{agreement}", headers=gateway.auth(token))
    assert r.json()["state"] == "terminated_by_third_party"


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
async def test_request_page_follows_the_devices_answers(tmp_path: Path, javascript: bool) -> None:
    """The live per-device view: with JavaScript the page updates itself as the devices answer;
    without, the Refresh link shows the same."""
    async with running_stack(tmp_path / "d") as s:
        _a, token = await s.gw.new_party("Acme", "111111111")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        rid = (await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "live",
                                        "confirmation_required": True})).json()["id"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                axe = await Axe.for_context(browser, javascript)
                context = await browser.new_context(java_script_enabled=javascript)
                page = await context.new_page()
                await page.goto(f"{s.gw.base_url}/dashboard/sign-in")
                await page.get_by_label("API token").fill(token)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_load_state()
                await page.get_by_role("link", name=f"Request {rid}").click()
                await page.wait_for_load_state()
                assert await page.get_by_role("heading", level=1).inner_text() == f"Request {rid}"
                assert "confirmed" not in await page.inner_text("#deliveries")
                assert await page.get_by_role("button", name="Pause live updates").count() == int(javascript)
                await axe.check(page, "/dashboard/requests/{id}")

                async def confirmed() -> bool:
                    return bool((await s.summary(token, rid))["devices_by_state"].get("confirmed"))
                await s.eventually(confirmed, timeout=20, advance=5)
                if javascript:  # no reload: the page fetches itself every 5 s
                    for _ in range(60):  # polled from here: the page's CSP allows no eval'd predicate
                        if "confirmed" in await page.inner_text("#deliveries"):
                            break
                        await asyncio.sleep(0.25)
                    assert "Updated at" in await page.inner_text("#live-controls")
                else:
                    await page.get_by_role("link", name="Refresh").click()
                    await page.wait_for_load_state()
                assert "confirmed" in await page.inner_text("#deliveries")
                await axe.check(page, "/dashboard/requests/{id} (answered)")
                await page.get_by_role("combobox", name="Language").select_option("es")
                await page.get_by_role("button", name="Change").click()
                await page.wait_for_load_state()
                assert await page.get_attribute("html", "lang") == "es"
                await axe.check(page, "/dashboard/requests/{id} (answered, Spanish)")
            finally:
                await browser.close()


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
async def test_operator_signs_in_and_sees_premises_routes_and_provisioning(gateway: Gateway, javascript: bool) -> None:
    await _world(gateway)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            axe = await Axe.for_context(browser, javascript)
            context = await browser.new_context(java_script_enabled=javascript, locale="es-MX")
            page = await context.new_page()
            await page.goto(f"{gateway.base_url}/operator")
            assert page.url.endswith("/dashboard/sign-in")
            await page.get_by_label("Token de la API").fill(gateway.operator_token)
            await page.get_by_role("button", name="Iniciar sesión", exact=True).click()
            await page.wait_for_load_state()
            assert page.url.endswith("/operator")
            assert await page.get_by_role("heading", level=1).inner_text() == "Vista del operador"
            main = await page.inner_text("main")
            assert DEVICE in main and "provision_requested" in main and ONCOR_2 in main
            await axe.check(page, "/operator (Spanish)")
            await page.get_by_role("button", name="Cerrar sesión").click()
            await page.wait_for_load_state()
            await page.goto(f"{gateway.base_url}/operator")
            assert page.url.endswith("/dashboard/sign-in")
        finally:
            await browser.close()
