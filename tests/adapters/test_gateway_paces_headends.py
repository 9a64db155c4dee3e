"""A head-end is batched and paced once, by its adapter, and that holds from the outside: a real
gateway (`[routes] kind = "adapters"`) fans one price request out over real HTTP to the premises of
three TDSPs (MultiSpeak, IEC 61968-9 over the real Mosquitto, binary TCP) whose profiles allow
5 items a batch at 40 a second; each emulated head-end counts what it gets and when. None gets a
message of more than 5 requests, nor more than the documented burst (max(batch_size, rate/10))
plus 40/s; and since the dispatcher no longer paces on top (with another burst) nothing is pushed
back: every delivery is handed over at its first attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.adapters.gateway_rig import gateway_with_headends
from tests.adapters.harness import assert_paced

THREE = {"oncor": "multispeak", "centerpoint": "cim", "tnmp": "binary"}
PACED = {"batch_size": 5, "rate_limit_per_s": 40.0}
PREMISES = 40  # per TDSP: a burst, then a second at 40/s


async def test_each_head_end_gets_batches_of_its_size_at_its_rate(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", THREE, meters=PREMISES,
                                     profiles=dict.fromkeys(THREE, PACED)) as rig:
        esis = [fleet.esi_id(i) for fleet in rig.fleets.values() for i in range(PREMISES)]
        _party, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, esis, scopes=["price"])
        r = await rig.gw.client.post("/v1/han-requests", headers=rig.gw.auth(token), json={
            "kind": "price", "all_premises": True, "provider_id": 1, "price": "0.1190", "duration_minutes": 60})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]

        async def all_delivered() -> dict[str, Any] | None:
            got = await rig.gw.client.get(f"/v1/han-requests/{rid}", headers=rig.gw.auth(token))
            summary: dict[str, Any] = got.json()
            return summary if summary["premises_by_state"] == {"delivered": len(esis)} else None

        await rig.eventually(all_delivered, timeout=30)
        items = (await rig.gw.client.get(f"/v1/han-requests/{rid}/deliveries", params={"limit": 500},
                                         headers=rig.gw.auth(token))).json()["items"]
        assert len(items) == len(esis)
        assert [i["attempts"] for i in items] == [0] * len(esis), {i["reason"] for i in items}
        for tdsp, headend in rig.headends.items():
            received = headend.core.received
            assert sum(n for _, n in received) == PREMISES, (tdsp, received)  # each once
            assert_paced(received, batch_size=5, rate_per_s=40.0)
        # 61968-9 carries a batch in one message: batches were formed, not single items
        assert max(n for _, n in rig.headends["centerpoint"].core.received) == 5
