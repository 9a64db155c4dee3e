"""The meter's HAN inventory against the gateway's records (issue 13): what differs, and what a
caller may see of either.

Pure: the records come from the store, the inventory from the premise's route
(ams_adapters/inventory.py). EUI-64s are compared in the API's form (16 upper-case hex digits).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ams_adapters.inventory import HanInventory, InventoryDevice, JoinState
from gateway.domain.model import DeviceStatus
from gateway.domain.records import HanDevice

# Our statuses under which the meter should hold the device (it has its key, or it joined).
ON_METER = frozenset({DeviceStatus.PROVISION_REQUESTED, DeviceStatus.FIND_PENDING, DeviceStatus.JOINED})


class DifferenceKind(enum.StrEnum):
    UNKNOWN_TO_METER = "unknown_to_meter"  # we think it is provisioned or joined; the meter does not know it
    NOT_PROVISIONED = "not_provisioned"  # the meter has it; we never provisioned it
    STATE_DIFFERS = "state_differs"  # both know it, in different states


@dataclass(frozen=True)
class Difference:
    eui64: str
    kind: DifferenceKind
    ours: DeviceStatus | None
    meter: JoinState | None
    detail: str


@dataclass(frozen=True)
class ReconciledInventory:
    """What one caller sees: its records, the meter's devices it may see, their differences, and
    how many devices (on record or on the meter) are someone else's."""

    records: tuple[HanDevice, ...]
    meter: tuple[InventoryDevice, ...] | None
    differences: tuple[Difference, ...]
    others: int


def api_eui64(eui64: str) -> str:
    """'00:1b:c5:00:00:00:00:01' (the route contract's form) -> '001BC50000000001' (the API's)."""
    return eui64.replace(":", "").replace("-", "").upper()


def _difference(eui64: str, ours: HanDevice | None, meter: InventoryDevice | None) -> Difference | None:
    status = ours.status if ours is not None else None
    if meter is None:
        if status in ON_METER:
            return Difference(eui64, DifferenceKind.UNKNOWN_TO_METER, status, None,
                              f"on record as {status}, but the meter does not know it (meter swapped, HAN "
                              "reset, or the device was removed at the meter)")
        return None
    if ours is None:
        return Difference(eui64, DifferenceKind.NOT_PROVISIONED, None, meter.join_state,
                          f"the meter holds it ({meter.join_state}) but it was never provisioned through this "
                          "gateway")
    if status is DeviceStatus.DELETE_REQUESTED:
        return None  # the delete is on its way; the device's own status follows it
    if status is not None and status.value != meter.join_state.value:
        return Difference(eui64, DifferenceKind.STATE_DIFFERS, status, meter.join_state,
                          f"on record as {status}, the meter says {meter.join_state}")
    return None


def reconcile(records: Sequence[HanDevice], inventory: HanInventory | None, *,
              party_id: int | None) -> ReconciledInventory:
    """`party_id`: a third party sees only the devices it provisioned (None: everything, for
    operators and technicians); everything else counts in `others`."""
    by_eui = {r.eui64.upper(): r for r in records}
    on_meter = {api_eui64(d.eui64): d for d in inventory.devices} if inventory is not None else {}

    def visible(eui: str) -> bool:
        record = by_eui.get(eui)
        return party_id is None or (record is not None and record.party_id == party_id)

    hidden = {eui for eui, r in by_eui.items() if not visible(eui) and r.status is not DeviceStatus.REMOVED}
    hidden |= {eui for eui in on_meter if not visible(eui)}
    mine = [r for r in records if visible(r.eui64.upper())]
    if inventory is None:
        return ReconciledInventory(tuple(mine), None, (), len(hidden))
    differences = [d for eui in sorted(set(by_eui) | set(on_meter)) if visible(eui)
                   and (d := _difference(eui, by_eui.get(eui), on_meter.get(eui))) is not None]
    return ReconciledInventory(
        records=tuple(mine), meter=tuple(d for eui, d in sorted(on_meter.items()) if visible(eui)),
        differences=tuple(differences), others=len(hidden))
