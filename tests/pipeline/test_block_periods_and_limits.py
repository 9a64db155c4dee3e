"""Block periods (PublishBlockPeriod per SE version, SE 1.0 excluded) and the device-limit
exclusion, over real HTTP against the simulated field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gateway.domain.limits import over_device_limit
from gateway.store.schema import han_devices, han_requests
from tests.pipeline.conftest import frames_sent, running_stack

PRICE = {"kind": "price", "provider_id": 7, "price": "0.1190", "number_of_tiers": 2, "tier": 1,
         "duration_minutes": 120}


async def test_price_with_block_period_reaches_se11_and_se12_meters(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        se11, se12, se10 = (s.premises[i].esi_id for i in (0, 2, 3))
        assert [s.premises[i].se_version for i in (0, 2, 3)] == ["1.1", "1.2", "1.0"]
        await s.customer(token, [se11, se12, se10])
        sent = frames_sent(s.field)
        r = await s.request(token, {**PRICE, "esi_ids": [se11, se12, se10], "block_period": {
            "duration_minutes": 60 * 24 * 30, "number_of_block_thresholds": 3, "repeating": True}})
        assert r.status_code == 202, r.text
        accepted = r.json()
        assert accepted["targeted"] == 2
        assert accepted["excluded"] == [{"esi_id": se10, "reason": "meter_capability: SE 1.0 meters carry no "
                                         "block periods (PublishBlockPeriod is SE 1.1)"}]
        block_id = accepted["block_period_request_id"]
        assert block_id is not None and block_id != accepted["id"]

        async def both_delivered() -> bool:
            price = await s.summary(token, accepted["id"])
            block = await s.summary(token, block_id)
            return (price["premises_by_state"] == {"delivered": 2}
                    and block["premises_by_state"] == {"delivered": 2})

        await s.eventually(both_delivered, advance=1)
        price = await s.summary(token, accepted["id"])
        block = await s.summary(token, block_id)
        assert price["block_period_request_id"] == block_id
        assert block["part_of_request_id"] == accepted["id"]
        assert block["se_id"] > price["se_id"]  # its own issuer event id, allocated after the price's
        items = {d["esi_id"]: d for d in await s.deliveries(token, block_id)}
        assert items[se11]["command"] == "publish_block_period"
        # The route's own id for each item (the simulated head-end's "sim-N") is kept per delivery.
        assert items[se11]["reference"].startswith("sim-") and items[se12]["reference"].startswith("sim-")
        assert items[se11]["reference"] != items[se12]["reference"]
        # The SE 1.1 and SE 1.2 layouts differ (17 vs 19 payload bytes): the route encoded each
        # meter's own from the request's fields (the gateway stores no frame).
        assert all(d["frame"] is None for d in items.values())
        frames = {esi: frame for esi, cluster, frame in sent if cluster == 0x0700 and frame[2] == 0x01}
        assert len(frames[se11]) == 3 + 17 and len(frames[se12]) == 3 + 19
        assert frames[se11][3 + 15] == 0x23  # number of price tiers 2, block thresholds 3 (SE 1.1 nibbles)
        # The SE 1.1 device stored the block period under (provider id, issuer event id): once the
        # meter passed it on ("delivered" is the hand-over to the meter; the HAN hop takes field time).
        async def device_stored_it() -> bool:
            stored = [d.price.block_periods for d in s.devices[se11] if getattr(d, "price", None) is not None]
            return any(b and (7, block["se_id"]) in b for b in stored)

        await s.eventually(device_stored_it, advance=1)
        # The SE 1.0 premise gets neither the price nor the block period.
        for rid in (accepted["id"], block_id):
            assert se10 not in {d["esi_id"] for d in await s.deliveries(token, rid)}


async def test_block_period_fields_are_validated(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        past = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        r = await s.request(token, {**PRICE, "esi_ids": [esi], "block_period": {
            "duration_minutes": 0x1000000, "number_of_block_thresholds": 16, "start": past}})
        assert r.status_code == 422, r.text
        errors = {e["field"]: e for e in r.json()["errors"]}
        assert errors["block_period.number_of_block_thresholds"]["code"] == "too_many_block_thresholds"
        assert "16 is over the SE limit of 15" in errors["block_period.number_of_block_thresholds"]["message"]
        assert errors["block_period.duration_minutes"]["code"] == "duration_over_limit"
        assert errors["block_period.start"]["code"] == "start_in_past"
        async with s.gw.store.engine.connect() as conn:  # nothing was accepted
            assert (await conn.execute(sa.select(sa.func.count()).select_from(han_requests))).scalar() == 0


async def test_premise_over_its_device_limit_is_excluded(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        crowded, fine = s.premises[0].esi_id, s.premises[1].esi_id
        await s.customer(token, [crowded, fine])
        # Six devices registered on a standard meter (5 at most): e.g. after a swap from an
        # enhanced meter, with the old registrations still in place.
        for i in range(6):
            assert await s.gw.store.add_device(esi_id=crowded, eui64=f"00124B00000000{i:02X}",
                                               device_type="thermostat", party_id=None, now=s.gw.clock.now())
        r = await s.request(token, {"kind": "text", "esi_ids": [crowded, fine], "text": "hello",
                                    "duration_minutes": 30})
        assert r.status_code == 202, r.text
        assert r.json()["targeted"] == 1
        assert r.json()["excluded"] == [{"esi_id": crowded, "reason": "device_limit: 6 devices registered, "
                                         "the standard meter serves at most 5"}]
        assert [d["esi_id"] for d in await s.deliveries(token, r.json()["id"])] == [fine]
        # Alone, the crowded premise refuses the request with the same reason.
        alone = await s.request(token, {"kind": "text", "esi_ids": [crowded], "text": "hello",
                                        "duration_minutes": 30})
        assert alone.status_code == 403, alone.text
        assert alone.json()["code"] == "no_authorized_target"
        assert "device_limit" in alone.json()["detail"]


def test_load_control_limit_on_enhanced_meters() -> None:
    assert over_device_limit(True, 10, 8, load_control=True) is None
    assert over_device_limit(True, 10, 9, load_control=True) == (
        "device_limit: 9 load-control devices registered, the meter serves at most 8")
    assert over_device_limit(True, 10, 9, load_control=False) is None  # texts and prices still go
    assert over_device_limit(True, 11, 0, load_control=False) == (
        "device_limit: 11 devices registered, the enhanced meter serves at most 10")
    assert over_device_limit(False, 5, 5, load_control=True) is None


async def test_fanout_leaves_out_premises_over_their_device_limit(tmp_path: Path) -> None:
    """Fan-out (prices and texts in SQL, load control per page in Python) excludes a premise whose
    meter has more devices registered than it serves, and lists it with the reason; a failed
    device holds no slot."""
    async with running_stack(tmp_path / "d", per_tdsp=3, pipeline={"fanout_page": 10}) as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        mine = sorted(p.esi_id for p in s.premises[:12])  # two pages
        crowded, relieved = mine[1], mine[11]
        await s.customer(token, mine)
        for i in range(6):
            for esi in (crowded, relieved):
                assert await s.gw.store.add_device(esi_id=esi, eui64=f"00124B00000001{i:02X}",
                                                   device_type="thermostat", party_id=None, now=s.gw.clock.now())
        async with s.gw.store.engine.begin() as conn:  # one of six failed to join: five slots held
            await conn.execute(han_devices.update().where(han_devices.c.esi_id == relieved,
                                                          han_devices.c.eui64 == "00124B0000000100").values(
                status="failed"))
        for body in ({"kind": "text", "all_premises": True, "text": "hello", "duration_minutes": 30},
                     {"kind": "load_control", "all_premises": True, "device_classes": 1, "criticality": 3,
                      "duration_minutes": 30}):
            r = await s.request(token, body)
            assert r.status_code == 202, r.text
            rid = r.json()["id"]

            async def expanded(rid: int = rid) -> dict[str, Any] | None:
                sm = await s.summary(token, rid)
                return sm if sm["state"] == "accepted" else None
            sm = await s.eventually(expanded, advance=1)
            assert sm["targeted"] == 11, sm
            assert [e["esi_id"] for e in sm["excluded"]] == [crowded], sm["excluded"]
            assert sm["excluded"][0]["reason"].startswith("device_limit"), sm["excluded"]
            delivered_to = {d["esi_id"] for d in await s.deliveries(token, rid)}
            assert delivered_to == set(mine) - {crowded}
