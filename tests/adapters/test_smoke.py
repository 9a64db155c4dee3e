"""Each transport carries one text end to end (temporary smoke test)."""
from __future__ import annotations

import pytest

from ams_adapters.contract import DeliveredToMeter, DeviceResponse, OperationKind, SubmitOutcome
from tests.adapters.harness import TDSPS, install, op, rig


@pytest.mark.parametrize("tdsp", TDSPS)
async def test_text_delivered_and_confirmed(tdsp: str) -> None:
    async with rig(tdsp) as r:
        (esi,) = await install(r, 1)
        o = op(OperationKind.LOAD_CONTROL, esi)
        (res,) = await r.adapter.submit([o])
        assert res.outcome is SubmitOutcome.ACCEPTED, res
        await r.wait_for(lambda e: isinstance(e, DeliveredToMeter) and e.outbound_id == o.outbound_id)
        rs = await r.wait_for(lambda e: isinstance(e, DeviceResponse) and e.outbound_id == o.outbound_id)
        assert rs[0].command == "report_event_status"
