"""The meter's HAN inventory against the gateway's records (gateway/domain/han_reconcile.py), case by
case: each kind of difference, the states that are not differences, and what a third party sees."""

from __future__ import annotations

from datetime import UTC, datetime

from ams_adapters.inventory import HanInventory, InventoryDevice, JoinState
from gateway.domain.han_reconcile import DifferenceKind, reconcile
from gateway.domain.model import DeviceStatus
from gateway.domain.records import HanDevice

AT = datetime(2026, 1, 1, tzinfo=UTC)
ESI = "10443720000000001"
ACME, BRAVO = 1, 2


def record(n: int, status: DeviceStatus, party: int | None = ACME) -> HanDevice:
    return HanDevice(n, ESI, f"001BC5000000000{n}", "in_home_display", status, party, AT, AT)


def on_meter(n: int, state: JoinState) -> InventoryDevice:
    return InventoryDevice(f"00:1b:c5:00:00:00:00:0{n}", state, "in_home_display")


def meter(*devices: InventoryDevice) -> HanInventory:
    return HanInventory(ESI, "00:07:81:00:00:00:00:01", 1.0, devices)


def kinds(records: list[HanDevice], inventory: HanInventory, party: int | None = None) -> list[tuple[str, str]]:
    return [(d.eui64[-1], d.kind.value) for d in reconcile(records, inventory, party_id=party).differences]


def test_each_difference_and_each_agreement() -> None:
    records = [record(1, DeviceStatus.JOINED), record(2, DeviceStatus.PROVISION_REQUESTED),
               record(3, DeviceStatus.FIND_PENDING), record(4, DeviceStatus.FAILED), record(5, DeviceStatus.REMOVED),
               record(6, DeviceStatus.DELETE_REQUESTED), record(7, DeviceStatus.JOINED)]
    inventory = meter(on_meter(1, JoinState.JOINED), on_meter(3, JoinState.JOINED), on_meter(5, JoinState.JOINED),
                      on_meter(6, JoinState.JOINED), on_meter(8, JoinState.FIND_PENDING))
    assert kinds(records, inventory) == [
        ("2", "unknown_to_meter"),  # provisioned by us, the meter holds no key for it
        ("3", "state_differs"),  # we still think find_pending; it joined (an event not yet in)
        ("5", "state_differs"),  # removed by us, still on the meter
        ("7", "unknown_to_meter"),  # joined by our records, gone from the meter (a swap, a reset)
        ("8", "not_provisioned"),  # on the meter, never provisioned here
    ]
    # Failed and not on the meter, a delete on its way, removed and gone: nothing to say.
    view = reconcile(records, inventory, party_id=None)
    differing = {d.eui64: d for d in view.differences}
    assert differing["001BC50000000003"].ours is DeviceStatus.FIND_PENDING
    assert differing["001BC50000000003"].meter is JoinState.JOINED
    assert differing["001BC50000000008"].ours is None and "never provisioned" in differing["001BC50000000008"].detail
    assert view.others == 0 and view.meter is not None and len(view.meter) == 5


def test_a_third_party_sees_its_own_devices_and_counts_the_others() -> None:
    records = [record(1, DeviceStatus.JOINED), record(2, DeviceStatus.JOINED, BRAVO),
               record(3, DeviceStatus.REMOVED, BRAVO), record(4, DeviceStatus.JOINED, None)]
    inventory = meter(on_meter(1, JoinState.JOINED), on_meter(2, JoinState.JOINED), on_meter(9, JoinState.JOINED))
    view = reconcile(records, inventory, party_id=ACME)
    assert [r.eui64 for r in view.records] == ["001BC50000000001"]
    assert view.meter is not None and [d.eui64 for d in view.meter] == ["00:1b:c5:00:00:00:00:01"]
    assert view.differences == ()  # the technician's device 4 and the unknown 9 are not Acme's to see
    # Others: Bravo's 2 (records and meter), the technician's 4, the meter's unknown 9; not Bravo's removed 3.
    assert view.others == 3
    # Without the meter: the records alone, and the others on record.
    plain = reconcile(records, None, party_id=ACME)
    assert (plain.meter, plain.differences, plain.others) == (None, (), 2)
    assert kinds(records, inventory, party=BRAVO) == []
    assert {d.kind for d in reconcile(records, inventory, party_id=None).differences} == {
        DifferenceKind.UNKNOWN_TO_METER, DifferenceKind.NOT_PROVISIONED}
