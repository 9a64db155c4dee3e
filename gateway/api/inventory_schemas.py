"""The answer of GET /v1/premises/{esi_id}/han/devices: the gateway's records of the premise's HAN
devices and, with `refresh=true`, the meter's own live list and where the two differ (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from ams_adapters.inventory import HanInventory, InventoryDevice, JoinState
from gateway.api.schemas import DeviceOut, ProblemOut
from gateway.domain.han_reconcile import DifferenceKind, ReconciledInventory, api_eui64
from gateway.domain.model import DeviceStatus


def _when(unix: float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


class MeterDeviceOut(BaseModel):
    eui64: str = Field(description="16 hex digits, as the rest of the API writes EUI-64s")
    join_state: JoinState = Field(description="as the meter knows it: provision_requested (window open), "
                                              "find_pending, joined, failed")
    device_type: str | None = Field(description="the SE device type it declared (in_home_display, pct, "
                                                "load_control_device, …); null when the meter does not know")
    se_version: str | None
    last_seen: datetime | None = Field(description="the last frame the meter received from it; null: never or "
                                                   "unknown")
    lqi: int | None = Field(description="link quality of that frame (0-255), where the route knows it")
    rssi: int | None = Field(description="its signal strength in dBm, where the route knows it")
    reason: str | None = Field(description="failed: why the meter refused it, in its own words")

    @classmethod
    def of(cls, d: InventoryDevice) -> MeterDeviceOut:
        return cls(eui64=api_eui64(d.eui64), join_state=d.join_state, device_type=d.device_type,
                   se_version=d.se_version, last_seen=_when(d.last_seen), lqi=d.lqi, rssi=d.rssi, reason=d.reason)


class InventoryDifferenceOut(BaseModel):
    eui64: str
    kind: DifferenceKind = Field(description="unknown_to_meter: on record as provisioned or joined, the meter "
                                             "does not know it; not_provisioned: the meter has it, it was never "
                                             "provisioned here; state_differs: both know it, in other states")
    ours: DeviceStatus | None = Field(description="the device's status in the gateway's records")
    meter: JoinState | None = Field(description="its state at the meter")
    detail: str


class HanInventoryOut(BaseModel):
    esi_id: str
    refreshed: bool = Field(description="true: the meter was asked now (refresh=true)")
    route: str | None = Field(description="the route that asked the meter (refresh=true)")
    meter_id: str | None = Field(description="the meter's own identity (its ESI EUI-64): a swapped meter "
                                             "answers another")
    taken_at: datetime | None = Field(description="when the meter gave its list")
    meter: list[MeterDeviceOut] | None = Field(description="the meter's devices; null without refresh=true")
    records: list[DeviceOut] = Field(description="the gateway's records of the premise's devices")
    differences: list[InventoryDifferenceOut]
    others: int = Field(description="devices on this premise (on record, or on the meter) that are not yours; "
                                    "0 for operators and technicians, who see them all")

    @classmethod
    def of(cls, esi_id: str, view: ReconciledInventory, inventory: HanInventory | None,
           route: str | None) -> HanInventoryOut:
        return cls(
            esi_id=esi_id, refreshed=inventory is not None, route=route,
            meter_id=inventory.meter_id if inventory is not None else None,
            taken_at=_when(inventory.taken_at) if inventory is not None else None,
            meter=None if view.meter is None else [MeterDeviceOut.of(d) for d in view.meter],
            records=[DeviceOut.of(r) for r in view.records],
            differences=[InventoryDifferenceOut(eui64=d.eui64, kind=d.kind, ours=d.ours, meter=d.meter,
                                                detail=d.detail) for d in view.differences],
            others=view.others)


def _problem(description: str) -> dict[str, Any]:
    return {"model": ProblemOut, "description": description, "content": {"application/problem+json": {}}}


# What refresh=true may answer besides the API's usual problems (docs/errors.md).
REFRESH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    502: _problem("the route refused the question (`inventory_refused`), e.g. the head-end does not know the meter"),
    503: _problem("the meter cannot be asked now (`inventory_unavailable`): head-end busy or down; see "
                  "Retry-After"),
    504: _problem("the meter did not answer before the request expired (`meter_did_not_answer`)"),
}
