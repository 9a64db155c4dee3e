"""The consent page in a real headless Chromium (Debian's package, driven by Playwright):
open the emailed link, check what a customer and a screen reader get, accept, see the result."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import async_playwright

from tests.gateway.conftest import ONCOR, Gateway

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


async def test_consent_page_in_chromium(gateway: Gateway, tmp_path: Path) -> None:
    # No skip: if the browser cannot start, this test fails and says why.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme Thermostats", "123456789")
    r = await gateway.invite(token, esi_ids=[(ONCOR, "MTR-1")], email="alice@example.test",
                             scopes=["load_control"], months=9)
    assert r.status_code == 201, r.text
    link = gateway.link(gateway.mails_to("alice@example.test")[-1], "/consent/")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = await browser.new_context(java_script_enabled=False)  # works without JS
            page = await context.new_page()
            response = await page.goto(link)
            assert response is not None and response.status == 200
            assert await page.get_attribute("html", "lang") == "en"
            heading = page.get_by_role("heading", level=1)
            assert "Acme Thermostats asks for your consent" in await heading.inner_text()
            body = await page.inner_text("main")
            assert ONCOR in body and "MTR-1" in body and "9 months" in body
            assert "load-control events" in body
            await page.screenshot(path=str(tmp_path / "consent.png"), full_page=True)

            # Keyboard users reach Accept first, then Reject.
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Accept"
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Reject"

            await page.get_by_role("button", name="Accept").click()
            await page.wait_for_load_state()
            assert await page.get_by_role("heading", level=1).inner_text() == "Consent given"
            assert "You accepted" in await page.inner_text("[role=status]")
        finally:
            await browser.close()

    r = await gateway.client.get(f"/v1/agreements/{r.json()['id']}", headers=gateway.auth(token))
    assert r.json()["state"] == "active"
