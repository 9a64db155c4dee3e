"""A price acknowledgement that never comes ends `no_acknowledgement` (issue 13), over real HTTP
against the simulated field on its virtual clock and the gateway's manual clock.

Simulated firmware that asks nothing back for a block period with "acknowledgement required"
(Block Period Control bit 0): the Silicon Labs variant (silabs-pct, drifting-pct, silabs-ihd-drlc)
and the spec variant (silabs-ihd, budget-ihd-lossy, spec-pct) store it and send nothing, not even
a Default Response; freescale (SE 1.0) never acknowledges anything. Only nxp-pct acknowledges.
Every one of them but freescale acknowledges a PublishPrice that asks for it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request

from gateway.config import ConfigError, parse_config
from gateway.domain.model import DeviceStatus
from gateway.pipeline.price_acks import route_form, silent_devices, verdict
from gateway.store import price_acks
from tests.gateway.conftest import start_server, stop_server
from tests.pipeline.conftest import Stack, running_stack

PRICE = {"kind": "price", "provider_id": 7, "price": "0.1190", "number_of_tiers": 2, "tier": 1,
         "duration_minutes": 240, "acknowledgement": True,
         "block_period": {"duration_minutes": 60 * 24, "number_of_block_thresholds": 3}}


def _eui(device: Any) -> str:
    return str(device.eui64[::-1].hex().upper())


async def _on_record(s: Stack, esi_id: str, device: Any) -> None:
    """The device as a head-end would have reported it joined (the simulated route provisions nothing)."""
    now = s.gw.clock.now()
    assert await s.gw.store.add_device(esi_id=esi_id, eui64=_eui(device), device_type=device.profile.device_type,
                                       party_id=None, now=now)
    assert await s.gw.store.set_device_status(esi_id, _eui(device), DeviceStatus.JOINED, now)


async def _items(s: Stack, token: str, request_id: int) -> dict[str, dict[str, Any]]:
    return {d["esi_id"]: d for d in await s.deliveries(token, request_id)}


async def _send(s: Stack, token: str, esi_ids: list[str]) -> tuple[int, int]:
    """A price asking for acknowledgement, with its block period; both delivered. Returns their ids."""
    r = await s.request(token, {**PRICE, "esi_ids": esi_ids})
    assert r.status_code == 202, r.text
    price_id, block_id = r.json()["id"], r.json()["block_period_request_id"]

    async def delivered() -> bool:
        price, block = await s.summary(token, price_id), await s.summary(token, block_id)
        return (price["premises_by_state"] == {"delivered": len(esi_ids)}
                and block["premises_by_state"] == {"delivered": len(esi_ids)})
    await s.eventually(delivered, advance=1)
    await s.advance(5)  # the devices' answers (0.15-0.3 s after the frame) come in
    return price_id, block_id


async def test_a_block_period_nobody_acknowledges_ends_no_acknowledgement_not_before(tmp_path: Path) -> None:
    """The "waits forever" case: silabs-ihd + silabs-pct acknowledge the price but send nothing for
    its block period. With the default 60 minutes the block period is still awaited at 59 minutes
    and ends `no_acknowledgement` after 60; the price ends `acknowledged` by both devices."""
    async with running_stack(tmp_path / "d") as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        premise = s.premises[0]
        assert [d.profile.id for d in s.devices[premise.esi_id]] == ["silabs-ihd", "silabs-pct"]
        await s.customer(token, [premise.esi_id])
        price_id, block_id = await _send(s, token, [premise.esi_id])
        price = (await _items(s, token, price_id))[premise.esi_id]
        assert price["state"] == "delivered"
        assert sorted(d["state"] for d in price["devices"]) == ["acknowledged", "acknowledged"]
        assert (await _items(s, token, block_id))[premise.esi_id]["devices"] == []

        s.gw.clock.advance(timedelta(minutes=59))
        await s.advance(3)
        assert (await s.summary(token, block_id))["premises_by_state"] == {"delivered": 1}  # still within its time
        assert (await s.summary(token, price_id))["premises_by_state"] == {"delivered": 1}

        s.gw.clock.advance(timedelta(minutes=2))

        async def decided() -> bool:
            block = await s.summary(token, block_id)
            return bool(block["premises_by_state"] == {"no_acknowledgement": 1})
        await s.eventually(decided, timeout=5)
        block = (await _items(s, token, block_id))[premise.esi_id]
        assert block["reason"] == "no PriceAcknowledgement within 60 min of the delivery to the meter"
        assert [h["state"] for h in block["history"]][-1] == "no_acknowledgement"
        assert block["devices"] == []  # no device on record, none answered: nobody to name
        summary = await s.summary(token, price_id)
        assert summary["premises_by_state"] == {"acknowledged": 1}
        assert summary["devices_by_state"] == {"acknowledged": 2}


async def test_mixed_premise_names_the_device_that_did_not_acknowledge(tmp_path: Path) -> None:
    """silabs-ihd + nxp-pct, both on record: the NXP thermostat acknowledges the block period, the
    display does not: the premise ends `partly_acknowledged`, the display `no_acknowledgement`
    (with a `delivery.device_state` webhook event). A premise with silent devices on record and
    none acknowledging ends `no_acknowledgement` with each of them named."""
    got: list[dict[str, Any]] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def receive(request: Request) -> dict[str, str]:
        got.append(json.loads(await request.body()))
        return {}

    server, task, port = await start_server(hook)
    try:
        async with running_stack(tmp_path / "d", pipeline={"price_ack_minutes": 15}) as s:
            _party, token = await s.gw.new_party("Acme", "123456789")
            silent, mixed = s.premises[0], s.premises[1]
            assert [d.profile.id for d in s.devices[mixed.esi_id]] == ["silabs-ihd", "nxp-pct"]
            for p in (silent, mixed):
                for device in s.devices[p.esi_id]:
                    await _on_record(s, p.esi_id, device)
            await s.customer(token, [silent.esi_id, mixed.esi_id])
            w = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token),
                                       json={"url": f"http://127.0.0.1:{port}/hook"})
            assert w.status_code == 201, w.text
            price_id, block_id = await _send(s, token, [silent.esi_id, mixed.esi_id])
            display, nxp = s.devices[mixed.esi_id]
            block = (await _items(s, token, block_id))[mixed.esi_id]
            assert [(d["eui64"], d["state"]) for d in block["devices"]] == [(route_form(_eui(nxp)), "acknowledged")]

            s.gw.clock.advance(timedelta(minutes=14))
            await s.advance(3)
            assert (await s.summary(token, block_id))["premises_by_state"] == {"delivered": 2}
            s.gw.clock.advance(timedelta(minutes=2))

            async def decided() -> bool:
                summary = await s.summary(token, block_id)
                return "delivered" not in summary["premises_by_state"]
            await s.eventually(decided, timeout=5)
            summary = await s.summary(token, block_id)
            assert summary["premises_by_state"] == {"partly_acknowledged": 1, "no_acknowledgement": 1}
            assert summary["devices_by_state"] == {"acknowledged": 1, "no_acknowledgement": 3}
            items = await _items(s, token, block_id)
            assert {d["eui64"]: d["state"] for d in items[mixed.esi_id]["devices"]} == {
                route_form(_eui(nxp)): "acknowledged", route_form(_eui(display)): "no_acknowledgement"}
            assert sorted(d["eui64"] for d in items[silent.esi_id]["devices"]) == sorted(
                route_form(_eui(d)) for d in s.devices[silent.esi_id])
            assert {d["state"] for d in items[silent.esi_id]["devices"]} == {"no_acknowledgement"}
            # Everyone acknowledged the price itself.
            assert (await s.summary(token, price_id))["premises_by_state"] == {"acknowledged": 2}

            async def hooked() -> bool:
                return any(e["state"] == "partly_acknowledged" for e in got)
            await s.eventually(hooked, timeout=10)
    finally:
        await stop_server(server, task)
    mine = [(e["type"], e["esi_id"], e["eui64"], e["state"]) for e in got if e["request_id"] == block_id]
    assert ("delivery.device_state", mixed.esi_id, route_form(_eui(display)), "no_acknowledgement") in mine
    assert ("delivery.state", mixed.esi_id, None, "partly_acknowledged") in mine
    assert ("delivery.state", silent.esi_id, None, "no_acknowledgement") in mine


async def test_a_price_without_acknowledgement_is_never_awaited(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d", pipeline={"price_ack_minutes": 1}) as s:
        _party, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        price_id, block_id = await _send_plain(s, token, esi)
        s.gw.clock.advance(timedelta(minutes=5))
        await s.advance(3)
        for rid in (price_id, block_id):
            assert (await s.summary(token, rid))["premises_by_state"] == {"delivered": 1}


async def _send_plain(s: Stack, token: str, esi: str) -> tuple[int, int]:
    r = await s.request(token, {**PRICE, "acknowledgement": False, "esi_ids": [esi]})
    assert r.status_code == 202, r.text
    price_id, block_id = r.json()["id"], r.json()["block_period_request_id"]

    async def delivered() -> bool:
        states = [(await s.summary(token, rid))["premises_by_state"] for rid in (price_id, block_id)]
        return states == [{"delivered": 1}] * 2
    await s.eventually(delivered, advance=1)
    return price_id, block_id


async def test_the_sweep_reads_only_the_awaited_rows(tmp_path: Path) -> None:
    """The once-a-second sweep reads the partial index of awaited rows (SQLite's plan), not the
    delivered rows of every fan-out."""
    async with running_stack(tmp_path / "d") as s:
        engine = s.gw.store.engine
        sql = str(price_acks.overdue_query(datetime(2027, 1, 1, tzinfo=UTC), 500).compile(
            engine.sync_engine, compile_kwargs={"literal_binds": True}))
        async with engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in (await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"))).all())
        assert "ix_han_deliveries_ack_due_at" in plan, plan


def test_the_verdict() -> None:
    assert verdict(0, 0) == "no_acknowledgement"
    assert verdict(0, 2) == "no_acknowledgement"
    assert verdict(1, 1) == "partly_acknowledged"
    assert verdict(2, 0) == "acknowledged"
    states = {"00:1b:c5:00:00:00:00:01": "acknowledged"}
    assert silent_devices(states, ["001BC50000000001", "001BC50000000002"]) == (1, ["00:1b:c5:00:00:00:00:02"])
    assert silent_devices({}, []) == (0, [])


@pytest.mark.parametrize("value", [0, 7 * 1440 + 1, "soon"])
def test_price_ack_minutes_is_bounded(value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"pipeline": {"price_ack_minutes": value}}, env={})
    [problem] = caught.value.problems
    assert problem.key == "pipeline.price_ack_minutes" and problem.value == value
    assert str(problem).startswith(f"pipeline.price_ack_minutes = {value!r}: ")
    assert parse_config({"pipeline": {"price_ack_minutes": 30}}, env={}).pipeline.price_ack_minutes == 30
