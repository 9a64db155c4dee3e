"""The dashboard's webhooks: dead letters of a webhook whose receiver is down, seen and redelivered
from the page by their owner only (a real gateway with the simulated route, events really sent)."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.ports import free_port
from tests.gateway.pages_helpers import browser, csrf_of, text_of
from tests.pipeline.conftest import running_stack


async def test_dead_letters_shown_and_redelivered_from_the_dashboard(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there: every event fails and, at one attempt, dies
    async with running_stack(tmp_path / "d", pipeline={"webhook_max_attempts": 1}) as s:
        _a, token = await s.gw.new_party("Acme", "111111111")
        _b, token_b = await s.gw.new_party("Bravo", "222222222")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        hook = (await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token),
                                       json={"url": f"http://127.0.0.1:{closed}/hook"})).json()["id"]
        r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "hook down"})
        assert r.status_code == 202, r.text

        async def dead_letters() -> list[dict[str, object]]:
            r = await s.gw.client.get(f"/v1/webhooks/{hook}/dead-letters", headers=s.gw.auth(token))
            items: list[dict[str, object]] = r.json()["items"]
            return items
        letters = await s.eventually(dead_letters, timeout=20, advance=5)

        async with browser(s.gw) as acme, browser(s.gw) as bravo:
            for client, who in ((acme, token), (bravo, token_b)):
                form = await client.get("/dashboard/sign-in")
                r = await client.post("/dashboard/sign-in", data={"token": who, "csrf_token": csrf_of(form)})
                assert r.status_code == 303
            page = await acme.get("/dashboard")
            seen = text_of(page)
            assert f"Webhook {hook}: http://127.0.0.1:{closed}/hook" in seen
            first = letters[0]["id"]
            assert f"Redeliver event {first}" in seen

            # Bravo's session cannot touch Acme's webhook: what an unknown webhook gets.
            bravo_page = await bravo.get("/dashboard")
            assert f"127.0.0.1:{closed}" not in bravo_page.text
            form = {"csrf_token": csrf_of(bravo_page)}
            foreign = await bravo.post(f"/dashboard/webhooks/{hook}/redeliver", data=form)
            unknown = await bravo.post("/dashboard/webhooks/9000000/redeliver", data=form)
            assert foreign.status_code == unknown.status_code == 404
            assert (await acme.post(f"/dashboard/webhooks/{hook}/redeliver", data={})).status_code == 403

            r = await acme.post(f"/dashboard/webhooks/{hook}/dead-letters/{first}/redeliver",
                                data={"csrf_token": csrf_of(page)})
            assert r.status_code == 303, r.text
            page = await acme.get(r.headers["location"])
            assert "1 dead letter(s) queued to be sent again." in text_of(page)
            r = await acme.post(f"/dashboard/webhooks/{hook}/dead-letters/9000000/redeliver",
                                data={"csrf_token": csrf_of(page)})
            assert r.status_code == 404 and "not a dead letter" in text_of(r)
            r = await acme.post(f"/dashboard/webhooks/{hook}/redeliver", data={"csrf_token": csrf_of(page)})
            page = await acme.get(r.headers["location"])
            found = re.search(r"(\d+) dead letter\(s\) queued", text_of(page))
            assert found, text_of(page)[:500]


async def test_chart_counts_what_reached_the_meters_and_what_the_devices_answered(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _a, token = await s.gw.new_party("Acme", "111111111")
        esis = [p.esi_id for p in s.premises[:2]]
        await s.customer(token, esis)
        rid = (await s.request(token, {"kind": "text", "esi_ids": esis, "text": "chart",
                                        "confirmation_required": True})).json()["id"]

        async def confirmed() -> dict[str, int] | None:
            devices: dict[str, int] = (await s.summary(token, rid))["devices_by_state"]
            return devices if devices.get("confirmed") else None
        await s.eventually(confirmed, timeout=20, advance=5)
        deliveries = await s.deliveries(token, rid)
        reached = sum(1 for d in deliveries if any(h["state"] == "delivered" for h in d["history"]))
        answers = sum(1 for d in deliveries for h in d["history"] if h.get("eui64"))
        assert reached >= 1 and answers >= 1, deliveries

        async with browser(s.gw) as acme:
            form = await acme.get("/dashboard/sign-in")
            await acme.post("/dashboard/sign-in", data={"token": token, "csrf_token": csrf_of(form)})
            page = await acme.get("/dashboard")
            assert (await acme.get(f"/dashboard/requests/{rid}")).status_code == 200
        _b, token_b = await s.gw.new_party("Bravo", "222222222")
        async with browser(s.gw) as bravo:  # another party's request: what an unknown one gets
            form = await bravo.get("/dashboard/sign-in")
            await bravo.post("/dashboard/sign-in", data={"token": token_b, "csrf_token": csrf_of(form)})
            foreign = await bravo.get(f"/dashboard/requests/{rid}")
            unknown = await bravo.get("/dashboard/requests/9000000")
            assert foreign.status_code == unknown.status_code == 404 and "chart" not in foreign.text
        assert 'role="img"' in page.text and "<svg" in page.text
        table = page.text.split("Deliveries and device answers per hour (UTC)")[1].split("</table>")[0]
        rows = [(int(d), int(a)) for d, a in re.findall(r"<td>(\d+)</td><td>(\d+)</td>", table)]
        assert len(rows) == 24
        assert sum(d for d, _a in rows) == reached and sum(a for _d, a in rows) == answers, (rows, deliveries)
