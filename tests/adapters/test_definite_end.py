"""Every item a head-end took reaches a definite end, whatever process dies when (issue 14).

- A head-end's notice about a transaction the receiving adapter never submitted (it was submitted
  by a process that is gone) is resolved through the gateway's record of its items
  (`ams_adapters.tracking.ItemLookup`) and applied; a notice about an item the gateway does not
  know is dropped. Over MultiSpeak (the emulator retries the refused callback, then tries the next
  NOT_Server URL it was given) and the binary protocol (results are resent until confirmed).
- Through the gateway: a delivery with no delivery report within `confirm_within_seconds` ends
  `unknown` with its reason; the late report still moves it to `delivered`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.contract import DeliveredToMeter, InboundEvent, OperationKind, SubmitOutcome
from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.tracking import KnownItem, MemoryItems
from simulators.headends.faults import Faults
from simulators.headends.multispeak_server import MultiSpeakHeadEnd
from tests.adapters.gateway_rig import gateway_with_headends
from tests.adapters.harness import install, op, rig

THREE = {"oncor": "multispeak", "centerpoint": "cim", "tnmp": "binary"}


async def _collect(adapter: HeadEndAdapter, into: list[InboundEvent]) -> None:
    async for ev in adapter.events():
        into.append(ev)


@pytest.mark.parametrize("tdsp", ["oncor", "tnmp"])
async def test_a_notice_for_an_item_another_adapter_submitted_is_resolved_and_applied(tdsp: str) -> None:
    # The head-end holds its notices for a second: the submitting adapter is gone by then.
    async with rig(tdsp, faults=Faults(late_callback_rate=1.0, late_callback_s=1.0), meters=5) as r:
        esis = await install(r, 2)
        ours, stranger = op(OperationKind.TEXT, esis[0], "hgw-101"), op(OperationKind.TEXT, esis[1], "hgw-102")
        results = await r.adapter.submit([ours, stranger])
        assert [x.outcome for x in results] == [SubmitOutcome.ACCEPTED] * 2
        await r.adapter.close()  # the process that submitted them dies before any notice

        # Another process: the gateway's record knows hgw-101 (for its premise), not hgw-102.
        items = MemoryItems([KnownItem("hgw-101", esis[0], ours.expires_at)])
        if isinstance(r.headend, MultiSpeakHeadEnd):
            cfg = AdapterConfig(tdsp=tdsp, url=r.headend.url)
        else:
            cfg = AdapterConfig(tdsp=tdsp, port=r.headend.port)  # type: ignore[attr-defined]
        other = make_adapter(cfg, items)
        seen: list[InboundEvent] = []
        await other.start()
        pump = asyncio.create_task(_collect(other, seen))
        try:
            if isinstance(r.headend, MultiSpeakHeadEnd):
                # The callbacks to the dead process are refused and retried with backoff; then the
                # head-end is given the live process's NOT_Server URL too (a load balancer's job).
                deadline = time.monotonic() + 10
                while r.headend.callback_errors < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                assert r.headend.callback_errors >= 2 and not seen
                r.headend.callback_urls = (other.transport.response_url,)  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                    any(isinstance(e, DeliveredToMeter) for e in seen) and other.stats["unknown_notifications"]):
                await asyncio.sleep(0.05)
            delivered = [e for e in seen if isinstance(e, DeliveredToMeter)]
            assert [(e.outbound_id, e.esi_id) for e in delivered] == [("hgw-101", esis[0])], seen
            assert other.stats["unknown_notifications"] >= 1  # hgw-102's notice: not the gateway's item
            assert items.calls >= 1
            # Both reached their meters once; only the known one is reported.
            assert sorted(r.core.meter_deliveries.values()) == [1, 1]
            if isinstance(r.headend, MultiSpeakHeadEnd):
                assert r.headend.callbacks_retried >= 1 and r.headend.callbacks_failed == 0
            # Resubmitted by the new process (its row was still queued when the first one died):
            # answered from what it now knows, never sent twice.
            (again,) = await other.submit([ours])
            assert again.outcome is SubmitOutcome.ACCEPTED
            await asyncio.sleep(0.2)
            assert sorted(r.core.meter_deliveries.values()) == [1, 1]
        finally:
            pump.cancel()
            await other.close()


async def test_no_report_within_the_bound_ends_unknown_and_a_late_report_delivers(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", THREE, meters=2,
                                     pipeline={"confirm_within_seconds": 1.0}) as rig_:
        esis = [fleet.esi_id(0) for fleet in rig_.fleets.values()]
        for fleet in rig_.fleets.values():
            fleet.install(fleet.esi_id(0))
        for headend in rig_.headends.values():  # every report comes 4 s late
            headend.core.faults = Faults(late_callback_rate=1.0, late_callback_s=4.0)
        _party, token = await rig_.gw.new_party("Acme", "123456789")
        await rig_.customer(token, esis, scopes=["text"])
        r = await rig_.gw.client.post("/v1/han-requests", headers=rig_.gw.auth(token), json={
            "kind": "text", "esi_ids": esis, "text": "Peak 2-6pm", "duration_minutes": 60})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]

        async def items() -> list[dict[str, Any]]:
            got = await rig_.gw.client.get(f"/v1/han-requests/{rid}/deliveries", headers=rig_.gw.auth(token))
            assert got.status_code == 200, got.text
            found: list[dict[str, Any]] = got.json()["items"]
            return found

        async def all_in(state: str) -> list[dict[str, Any]] | None:
            found = await items()
            return found if len(found) == 3 and all(i["state"] == state for i in found) else None

        unknown = await rig_.eventually(lambda: all_in("unknown"), timeout=10)
        for item in unknown:
            assert item["reason"] == "no delivery report from the route within 1 s of submission", item
        summary = (await rig_.gw.client.get(f"/v1/han-requests/{rid}", headers=rig_.gw.auth(token))).json()
        assert summary["premises_by_state"] == {"unknown": 3}
        delivered = await rig_.eventually(lambda: all_in("delivered"), timeout=15)
        for item in delivered:
            states = [h["state"] for h in item["history"]]
            assert states.index("submitted") < states.index("unknown") < states.index("delivered"), states
        for tdsp in THREE:  # each head-end carried its premise's text once
            assert sum(rig_.headends[tdsp].core.meter_deliveries.values()) == 1
