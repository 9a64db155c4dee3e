"""Text with confirmation, price with acknowledgement, load control through started and completed,
over real HTTP against the simulated field."""

from __future__ import annotations

from pathlib import Path

from tests.pipeline.conftest import running_stack


async def test_text_is_confirmed_by_the_ihd(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id  # silabs-ihd + silabs-pct, SE 1.1
        await s.customer(token, [esi])
        r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "Peak 2-6pm",
                                    "confirmation_required": True, "duration_minutes": 60})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        assert r.json()["targeted"] == 1

        async def confirmed() -> bool:
            devs = (await s.deliveries(token, rid))[0]["devices"]
            return any(d["state"] == "confirmed" for d in devs)

        await s.eventually(confirmed, advance=5)
        summary = await s.summary(token, rid)
        assert summary["premises_by_state"] == {"delivered": 1}
        assert summary["devices_by_state"]["confirmed"] >= 1
        ihd = s.devices[esi][0]
        assert ihd.messaging.displayed_text == "Peak 2-6pm" or ihd.messaging.displayed_text is None
