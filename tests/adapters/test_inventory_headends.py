"""`HeadEndAdapter.han_inventory` against each TDSP's emulated head-end over real sockets (and the real
Mosquitto for 61968-9) (issue 13): the simulated meter's own list, the typed failures, and the
emulator's faults (busy, duplicated answers, a meter dark for a while)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ams_adapters.inventory import InventoryUnavailable, JoinState
from simulators.addressing import eui64_str
from simulators.headends.faults import Faults
from tests.adapters.harness import TDSPS, install, rig


@pytest.mark.parametrize("tdsp", TDSPS)
async def test_the_meter_lists_joined_pending_and_refused_devices(tdsp: str) -> None:
    async with rig(tdsp, meters=4) as r:
        [esi] = await install(r, 1)
        meter = r.fleet.meter(esi)
        ihd, pct = r.fleet.devices(esi)
        # Two more at the meter: one waiting for its button, one whose key does not match.
        waiting, wrong = (0x00AB000000000001).to_bytes(8, "little"), (0x00AB000000000002).to_bytes(8, "little")
        meter.provision_device(waiting, link_key=bytes(16))
        meter.provision_device(wrong, link_key=bytes(16))
        meter.han.records[wrong].status = meter.han.records[wrong].status.FAILED
        meter.han.records[wrong].reason = "link_key_mismatch"
        inventory = await r.adapter.han_inventory(esi)
        assert (inventory.esi_id, inventory.meter_id) == (esi, eui64_str(meter.eui64))
        assert abs(inventory.taken_at - r.fleet.clock.now()) < 5
        by_eui = {d.eui64: d for d in inventory.devices}
        assert {e: d.join_state for e, d in by_eui.items()} == {
            eui64_str(ihd.eui64): JoinState.JOINED, eui64_str(pct.eui64): JoinState.JOINED,
            eui64_str(waiting): JoinState.PROVISION_REQUESTED, eui64_str(wrong): JoinState.FAILED}
        joined = by_eui[eui64_str(pct.eui64)]
        assert (joined.device_type, joined.se_version) == ("pct", pct.profile.se_version)
        heard = meter.han.records[pct.eui64].last_heard
        assert joined.last_seen == pytest.approx(heard, abs=0.001)  # XML carries milliseconds
        assert by_eui[eui64_str(wrong)].reason == "link_key_mismatch"
        assert by_eui[eui64_str(waiting)].device_type is None  # no descriptor before it joins
        assert r.core.stats["inventories"] == 1 and not r.events  # a query ends no item
        assert r.adapter.stats["unknown_notifications"] == 0

        with pytest.raises(InventoryUnavailable, match="no such meter") as unknown:
            await r.adapter.han_inventory("10443729999999999")
        assert unknown.value.refused and not unknown.value.timed_out


@pytest.mark.parametrize("tdsp", ["oncor", "centerpoint", "tnmp"])
async def test_a_dark_meter_answers_when_back_or_times_out(tdsp: str) -> None:
    async with rig(tdsp, meters=3, profile_overrides={"inventory_timeout_s": 1.0}) as r:
        [esi] = await install(r, 1)
        # Dark for a moment: the head-end retries the meter until the request's expiry.
        r.core.meter_unreachable_for(esi, 0.4)
        inventory = await r.adapter.han_inventory(esi)
        assert len(inventory.devices) == 2 and r.core.stats["meter_unreachable_retries"] >= 1
        # Dark past the expiry: no answer (MultiSpeak: the request is discarded), typed.
        r.fleet.meter(esi).set_reachable(False)
        started = time.monotonic()
        with pytest.raises(InventoryUnavailable, match="did not answer within 1 s") as dark:
            await r.adapter.han_inventory(esi)
        assert dark.value.timed_out and 1.0 <= time.monotonic() - started < 5.0


@pytest.mark.parametrize("tdsp", ["oncor", "centerpoint", "tnmp"])
async def test_busy_head_end_and_duplicated_answers(tdsp: str) -> None:
    faults = Faults()
    async with rig(tdsp, meters=3, faults=faults) as r:
        [esi] = await install(r, 1)
        faults.busy_rate = 1.0
        with pytest.raises(InventoryUnavailable, match="busy") as busy:
            await r.adapter.han_inventory(esi)
        assert busy.value.retry_after_s and not busy.value.refused
        faults.busy_rate = 0.0
        faults.duplicate_callback_rate = 1.0  # every answer comes twice
        first, second = await asyncio.gather(r.adapter.han_inventory(esi), r.adapter.han_inventory(esi))
        assert first.devices == second.devices and len(first.devices) == 2
        await asyncio.sleep(0.4)  # the duplicates arrive, and are dropped as answered queries
        assert r.adapter.stats["unknown_notifications"] == 0 and not r.events
