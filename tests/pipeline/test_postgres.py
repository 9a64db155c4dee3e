"""The pipeline on the real PostgreSQL: a text confirmed, ids from the shared counter, and the
arbitration between two providers (row lock on the counter)."""

from __future__ import annotations

from pathlib import Path

from tests.pipeline.conftest import running_stack


async def test_pipeline_on_postgresql(tmp_path: Path, migrated_pg_url: str) -> None:
    async with running_stack(tmp_path / "d", storage={"url": migrated_pg_url}) as s:
        _a, token_a = await s.gw.new_party("Acme", "123456789")
        _b, token_b = await s.gw.new_party("Bolt", "987654321")
        esi = s.premises[0].esi_id
        await s.customer(token_a, [esi])
        await s.customer(token_b, [esi])
        r = await s.request(token_a, {"kind": "text", "esi_ids": [esi], "text": "pg", "confirmation_required": True})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]

        async def confirmed() -> bool:
            items = await s.deliveries(token_a, rid)
            return any(d["state"] == "confirmed" for d in items[0]["devices"])
        await s.eventually(confirmed, advance=5)
        lce = {"kind": "load_control", "esi_ids": [esi], "device_classes": 1, "criticality": 3,
               "duration_minutes": 30}
        first = await s.request(token_a, lce)
        second = await s.request(token_b, lce)
        assert first.status_code == 202 and second.status_code == 409, second.text
        assert first.json()["se_id"] == r.json()["se_id"] + 1
