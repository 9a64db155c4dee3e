"""The text limit, from the outside: over real HTTP, a text of exactly a premise's limit in UTF-8
bytes (multi-byte characters) is accepted and reaches the meter, and one byte more is refused
before acceptance with `text_too_long` naming the field, the value and the limit.

The limit is the smaller of the route's own (`max_text_bytes`) and the SE single-frame budget at
the meter's SE version (ams_adapters/text_limit.py): the simulated route has no limit of its own
(58 bytes at SE 1.1, 57 at SE 1.2: SE 1.2's DisplayMessage has one more fixed byte); the TNMP
head-end (binary protocol: the adapter encodes the frame) takes 57; Oncor's (MultiSpeak: fields,
its meters fragment long texts) takes 80. (The radio route: tests/pipeline/test_radio_route_e2e.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from gateway.store.schema import han_requests
from tests.adapters.gateway_rig import gateway_with_headends
from tests.pipeline.conftest import frames_sent, running_stack
from zigbee_se import decode_frame


def text_of(size: int) -> str:
    """`size` UTF-8 bytes, mostly two-byte characters (fewer characters than bytes)."""
    return "é" * (size // 2) + "x" * (size % 2)


async def _refused(response: httpx.Response, size: int, limit: int, says: str) -> None:
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert (error["field"], error["code"], error["value"], error["limit"]) == ("text", "text_too_long", size, limit)
    excess = "1 byte" if size == limit + 1 else f"{size - limit} bytes"
    assert error["message"] == f"{size} UTF-8 bytes is over the limit of {limit} bytes {says} by {excess}"


async def _requests(store: Any) -> int:
    async with store.engine.connect() as conn:
        count: int = (await conn.execute(sa.select(sa.func.count()).select_from(han_requests))).scalar_one()
    return count


async def test_simulated_route_limit_is_the_frame_budget_of_each_se_version(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        se11, se12 = s.premises[0].esi_id, s.premises[2].esi_id
        assert [s.premises[i].se_version for i in (0, 2)] == ["1.1", "1.2"]
        await s.customer(token, [se11, se12])
        text = {"kind": "text", "duration_minutes": 30}

        r = await s.request(token, {**text, "esi_ids": [se11], "text": text_of(59)})
        await _refused(r, 59, 58, "for SE 1.1 meters on route simulated (the SE single-frame budget)")
        r = await s.request(token, {**text, "esi_ids": [se11, se12], "text": text_of(58)})  # the tightest applies
        await _refused(r, 58, 57, "for SE 1.2 meters on route simulated (the SE single-frame budget)")
        assert await _requests(s.gw.store) == 0  # nothing accepted

        at_limit = {se11: text_of(58), se12: text_of(57)}
        for esi, body in at_limit.items():
            assert len(body) < len(body.encode())  # bytes, not characters
            r = await s.request(token, {**text, "esi_ids": [esi], "text": body})
            assert r.status_code == 202, r.text

        def shown(esi: str) -> set[str]:
            return {d.messaging.displayed_text for d in s.devices[esi]
                    if getattr(d, "messaging", None) is not None and d.messaging.displayed_text}

        async def displayed() -> bool:
            return all(at_limit[esi] in shown(esi) for esi in at_limit)
        await s.eventually(displayed, advance=1)


async def test_headend_routes_limits_are_theirs_in_bytes(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary", "oncor": "multispeak"}, meters=1) as rig:
        tnmp, oncor = rig.fleets["tnmp"].esi_id(0), rig.fleets["oncor"].esi_id(0)
        for fleet in rig.fleets.values():
            fleet.install(fleet.esi_id(0))
        _party, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, [tnmp, oncor], scopes=["text"])

        async def post(esi: str, body: str) -> httpx.Response:
            return await rig.gw.client.post("/v1/han-requests", headers=rig.gw.auth(token), json={
                "kind": "text", "esi_ids": [esi], "text": body, "duration_minutes": 30})

        own = "(the route's own limit)"
        await _refused(await post(tnmp, text_of(58)), 58, 57, f"for SE 1.1 meters on route tnmp {own}")
        await _refused(await post(oncor, text_of(81)), 81, 80, f"for SE 1.1 meters on route oncor {own}")
        assert await _requests(rig.store) == 0
        sent = {esi: frames_sent(fleet) for esi, fleet in ((tnmp, rig.fleets["tnmp"]), (oncor, rig.fleets["oncor"]))}
        at_limit = {tnmp: text_of(57), oncor: text_of(80)}  # Oncor's beyond the SE frame budget: it fragments
        for esi, body in at_limit.items():
            r = await post(esi, body)
            assert r.status_code == 202, r.text

        def reached() -> dict[str, list[str]]:
            """The texts each meter was handed by its head-end (its display may show fewer bytes)."""
            return {esi: [decode_frame(cluster, frame).fields["message"] for e, cluster, frame in frames
                          if e == esi and cluster == 0x0703] for esi, frames in sent.items()}

        async def arrived() -> bool:
            return reached() == {esi: [body] for esi, body in at_limit.items()}
        await rig.eventually(arrived)
