"""End to end over real HTTP: price acknowledgement, load control started/completed and opt-out,
cancellation before and after delivery, expiry while a meter is dark, fan-out, arbitration under
each policy, refusals (no consent, wrong scope, terminated) with nothing at the meters, typed
validation errors, signed webhooks in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from gateway.pipeline.webhooks import verify
from tests.gateway.conftest import start_server, stop_server
from tests.pipeline.conftest import Stack, running_stack


def _states(items: list[dict[str, Any]]) -> set[str]:
    return {d["state"] for item in items for d in item["devices"]}


async def _device_state(s: Stack, token: str, rid: int, state: str, advance: float = 5) -> None:
    async def seen() -> bool:
        return state in _states(await s.deliveries(token, rid))
    await s.eventually(seen, advance=advance)


async def _premise_state(s: Stack, token: str, rid: int, state: str) -> None:
    async def seen() -> bool:
        return (await s.summary(token, rid))["premises_by_state"].get(state, 0) > 0
    await s.eventually(seen, advance=1)


async def test_price_is_acknowledged(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        r = await s.request(token, {"kind": "price", "esi_ids": [esi], "provider_id": 7, "rate_label": "PEAK",
                                    "price": "0.1234", "tier": 2, "number_of_tiers": 3,
                                    "acknowledgement": True, "duration_minutes": 120})
        assert r.status_code == 202, r.text
        await _device_state(s, token, r.json()["id"], "acknowledged")
        se10 = s.premises[3]
        assert se10.se_version == "1.0"
        await s.customer(token, [se10.esi_id])
        r = await s.request(token, {"kind": "price", "esi_ids": [esi, se10.esi_id], "provider_id": 7,
                                    "price": "0.2", "acknowledgement": True})
        assert r.status_code == 202, r.text
        assert r.json()["targeted"] == 1
        assert r.json()["excluded"][0]["esi_id"] == se10.esi_id
        assert r.json()["excluded"][0]["reason"].startswith("meter_capability")
        current = s.devices[esi][0].price.current()
        assert current is not None


async def test_load_control_started_completed_and_opt_out(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi, esi2 = s.premises[0].esi_id, s.premises[5].esi_id
        await s.customer(token, [esi, esi2])
        body = {"kind": "load_control", "esi_ids": [esi], "device_classes": 0x0FFF, "criticality": 3,
                "duration_minutes": 2, "cooling_offset_c": "2.0"}
        r = await s.request(token, body)
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        await _device_state(s, token, rid, "started", advance=5)
        await _device_state(s, token, rid, "completed", advance=20)
        history = {h["state"] for h in (await s.deliveries(token, rid))[0]["history"]}
        assert {"submitted", "delivered", "received", "started", "completed"} <= history

        r = await s.request(token, {**body, "esi_ids": [esi2], "duration_minutes": 30})
        rid2, se_id = r.json()["id"], r.json()["se_id"]
        await _device_state(s, token, rid2, "started")
        pct = s.devices[esi2][1]
        assert pct.opt_out(se_id)
        await _device_state(s, token, rid2, "opted_out")


async def test_cancel_after_delivery_sends_the_se_cancel(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "later", "start": start})
        rid = r.json()["id"]
        await _premise_state(s, token, rid, "delivered")
        c = await s.request(token, {"kind": "cancel_text", "request_id": rid})
        assert c.status_code == 202, c.text
        assert c.json()["targeted"] == 1  # delivered: an SE CancelMessage goes out
        await _premise_state(s, token, rid, "cancelled")
        cancel_items = await s.deliveries(token, c.json()["id"])
        assert cancel_items[0]["command"] == "cancel_message"
        assert cancel_items[0]["state"] == "delivered"


async def test_cancel_before_delivery_removes_the_pending_work(tmp_path: Path) -> None:
    # CenterPoint premises have no route in this stack: their items wait in the outbox.
    async with running_stack(tmp_path / "d", no_route_prefix="1008901") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[2].esi_id
        assert esi.startswith("1008901")
        await s.customer(token, [esi])
        before = s.received(esi)
        r = await s.request(token, {"kind": "load_control", "esi_ids": [esi], "device_classes": 1,
                                    "criticality": 2, "duration_minutes": 30})
        rid = r.json()["id"]
        await s.advance(2)
        assert (await s.summary(token, rid))["premises_by_state"] == {"queued": 1}
        c = await s.request(token, {"kind": "cancel_load_control", "request_id": rid})
        assert c.status_code == 202, c.text
        assert c.json()["targeted"] == 0  # nothing reached the premise: no SE cancel needed
        assert (await s.summary(token, rid))["premises_by_state"] == {"cancelled": 1}
        await s.advance(5)
        assert s.received(esi) == before


async def test_termination_withdraws_delivered_events(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        agreement = await s.customer(token, [esi])
        r = await s.request(token, {"kind": "load_control", "esi_ids": [esi], "device_classes": 0x0FFF,
                                    "criticality": 3, "duration_minutes": 60})
        rid = r.json()["id"]
        await _device_state(s, token, rid, "started")
        t = await s.gw.client.post(f"/v1/agreements/{agreement}/terminate", headers=s.gw.auth(token))
        assert t.status_code == 200, t.text
        await _device_state(s, token, rid, "cancelled", advance=2)  # the device's own report
        summary = await s.summary(token, rid)
        assert summary["premises_by_state"] == {"cancelled": 1}
        items = await s.deliveries(token, rid)
        assert items[0]["reason"] == "agreement ended: SE cancel sent"


async def test_expiry_while_meter_unreachable(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        s.field.set_reachable(esi, False)
        before = s.received(esi)
        r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "dark", "duration_minutes": 1})
        rid = r.json()["id"]
        await s.advance(70, step=10)
        await _premise_state(s, token, rid, "expired")
        s.field.set_reachable(esi, True)
        await s.advance(5)
        assert s.received(esi) == before  # never sent late


async def test_fanout_to_all_my_premises(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d", per_tdsp=4, pipeline={"fanout_page": 10}) as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        mine = [p.esi_id for p in s.premises[:15]]
        await s.customer(token, mine)
        r = await s.request(token, {"kind": "price", "all_premises": True, "provider_id": 1, "price": "0.25",
                                    "duration_minutes": 60})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]

        async def all_delivered() -> bool:
            sm = await s.summary(token, rid)
            return sm["state"] == "accepted" and sm["premises_by_state"].get("delivered") == 15
        await s.eventually(all_delivered, advance=1)
        assert (await s.summary(token, rid))["targeted"] == 15
        others = [p.esi_id for p in s.premises[15:]]
        assert all(s.devices[e][0].price.current() is None for e in others)


@pytest.mark.parametrize("policy", ["refuse", "queue_after", "supersede_if_higher_criticality"])
async def test_conflicting_events_of_two_providers(tmp_path: Path, policy: str) -> None:
    async with running_stack(tmp_path / "d", pipeline={"overlap_policy": policy}) as s:
        _a, token_a = await s.gw.new_party("Acme", "123456789")
        _b, token_b = await s.gw.new_party("Bolt", "987654321")
        esi = s.premises[0].esi_id
        await s.customer(token_a, [esi])
        await s.customer(token_b, [esi])
        lce = {"kind": "load_control", "esi_ids": [esi], "device_classes": 1, "duration_minutes": 60}
        first = await s.request(token_a, {**lce, "criticality": 3})
        assert first.status_code == 202
        second = await s.request(token_b, {**lce, "criticality": 5})
        if policy == "refuse":
            assert second.status_code == 409, second.text
            assert str(first.json()["se_id"]) in second.json()["detail"]
        elif policy == "queue_after":
            assert second.status_code == 202, second.text
            assert second.json()["starts_at"] >= (datetime.now(UTC) + timedelta(minutes=59)).isoformat()
        else:
            assert second.status_code == 202, second.text
            lower = await s.request(token_a, {**lce, "criticality": 2})
            assert lower.status_code == 409
        assert second.json().get("se_id", 0) != first.json()["se_id"]
        # Never another party's event: B cannot cancel A's request.
        c = await s.request(token_b, {"kind": "cancel_load_control", "request_id": first.json()["id"]})
        assert c.status_code == 404


async def test_refused_without_consent_scope_or_after_termination(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi, esi2 = s.premises[0].esi_id, s.premises[1].esi_id
        before = {e: s.received(e) for e in (esi, esi2)}
        r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "hi"})
        assert r.status_code == 403 and r.json()["code"] == "no_authorized_target"
        agreement = await s.customer(token, [esi2], scopes=["price"])
        r = await s.request(token, {"kind": "text", "esi_ids": [esi2], "text": "hi"})
        assert r.status_code == 403 and "scope_missing" in r.text
        await s.gw.client.post(f"/v1/agreements/{agreement}/terminate", headers=s.gw.auth(token))
        r = await s.request(token, {"kind": "price", "esi_ids": [esi2], "provider_id": 1, "price": "1"})
        assert r.status_code == 403
        await s.advance(10)
        assert {e: s.received(e) for e in (esi, esi2)} == before


async def test_validation_errors_are_typed(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _p, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "x" * 80, "start": past,
                                    "duration_minutes": 99999})
        assert r.status_code == 422
        codes = {e["code"]: e for e in r.json()["errors"]}
        assert {"start_in_past", "duration_over_limit", "text_too_long"} <= set(codes)
        too_long = codes["text_too_long"]
        assert (too_long["field"], too_long["value"], too_long["limit"]) == ("text", 80, 58)
        assert too_long["message"] == ("80 UTF-8 bytes is over the limit of 58 bytes for SE 1.1 meters on route "
                                       "simulated (the SE single-frame budget) by 22 bytes")
        r = await s.request(token, {"kind": "price", "esi_ids": [esi], "provider_id": 1, "price": "0.123",
                                    "trailing_digits": 1})
        assert r.status_code == 422 and r.json()["errors"][0]["code"] == "price_out_of_range"
        r = await s.request(token, {"kind": "load_control", "esi_ids": [esi], "device_classes": 0x9001,
                                    "criticality": 1, "duration_minutes": 10, "cooling_offset_c": "1",
                                    "cooling_set_point_c": "24"})
        codes = {e["code"] for e in r.json()["errors"]}
        assert {"unknown_device_class_bits", "set_point_and_offset"} <= codes


async def test_webhooks_are_signed_and_ordered(tmp_path: Path) -> None:
    got: list[tuple[dict[str, str], str]] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def receive(request: Request) -> dict[str, str]:
        got.append(({k.lower(): v for k, v in request.headers.items()}, (await request.body()).decode()))
        return {}

    server, task, port = await start_server(hook)
    try:
        async with running_stack(tmp_path / "d") as s:
            _p, token = await s.gw.new_party("Acme", "123456789")
            esi = s.premises[0].esi_id
            await s.customer(token, [esi])
            w = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token),
                                       json={"url": f"http://127.0.0.1:{port}/hook"})
            assert w.status_code == 201, w.text
            secret = w.json()["secret"]
            r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "hook",
                                        "confirmation_required": True})
            rid = r.json()["id"]
            await _device_state(s, token, rid, "confirmed")

            async def confirmed_hook() -> bool:
                return any('"confirmed"' in b for _, b in got)
            await s.eventually(confirmed_hook)
    finally:
        await stop_server(server, task)
    assert all(verify(secret, h, b) for h, b in got)
    import json
    states = [json.loads(b)["state"] for _, b in got if json.loads(b)["request_id"] == rid]
    assert states.index("submitted") < states.index("delivered") < states.index("confirmed")
