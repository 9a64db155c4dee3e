"""Price acknowledgements that never come: a price or block period that asked its devices to
acknowledge (Price Control / Block Period Control bit 0) is decided `[pipeline] price_ack_minutes`
after it reached its meter, so the gateway never waits forever for a device that does not answer
(Silicon Labs' price client sends nothing at all for a block period, SE_BEHAVIOUR.md §4.5).

No route reports which of a meter's devices a price reached (`DeliveredToMeter` is per premise),
so the devices expected to acknowledge are those the gateway can name: each device on record at
the premise as joined (`han_devices`), and each device that answered this delivery. At the
deadline, each expected device that did not acknowledge gets the device state
`no_acknowledgement`, and the delivery (the premise) ends:

- `acknowledged`: at least one device acknowledged, and every expected device did;
- `partly_acknowledged`: some devices acknowledged, a device on record did not (named);
- `no_acknowledgement`: no device acknowledged in time.

An acknowledgement arriving later is still recorded as its device's state (the history shows
both); the delivery's verdict stays what the deadline decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.store import deliveries, price_acks
from gateway.store.deliveries import DELIVERED, Transition
from gateway.store.store import Store

ACKNOWLEDGED = price_acks.ACKNOWLEDGED
PARTLY_ACKNOWLEDGED = "partly_acknowledged"
NO_ACKNOWLEDGEMENT = "no_acknowledgement"
ACK_ENDS = (ACKNOWLEDGED, PARTLY_ACKNOWLEDGED, NO_ACKNOWLEDGEMENT)


def route_form(eui64: str) -> str:
    """'001BC50000000001' (on record) -> '00:1b:c5:00:00:00:00:01' (as routes report devices)."""
    plain = eui64.replace(":", "").lower()
    return ":".join(plain[i:i + 2] for i in range(0, 16, 2))


def verdict(acknowledged: int, silent: int) -> str:
    """The delivery's end from how many expected devices acknowledged and how many did not."""
    if not acknowledged:
        return NO_ACKNOWLEDGEMENT
    return PARTLY_ACKNOWLEDGED if silent else ACKNOWLEDGED


def silent_devices(states: dict[str, str], on_record: Sequence[str]) -> tuple[int, list[str]]:
    """(devices that acknowledged, devices expected that did not: route form, sorted)."""
    by_device = {route_form(eui): state for eui, state in states.items()}
    for eui in on_record:
        by_device.setdefault(route_form(eui), "")
    acknowledged = sum(1 for state in by_device.values() if state == ACKNOWLEDGED)
    return acknowledged, sorted(eui for eui, state in by_device.items() if state != ACKNOWLEDGED)


async def end_overdue(store: Store, now: datetime, limit: int, minutes: int) -> int:
    """Decide up to `limit` deliveries whose devices' time to acknowledge ran out. Returns how
    many were looked at (0: nothing overdue, no write transaction)."""
    async with store.engine.connect() as conn:
        rows = await price_acks.overdue(conn, now, limit)
    if not rows:
        return 0
    async with store.transaction() as conn:
        taken = await price_acks.claim(conn, [r.id for r in rows])
        # Only a delivery still at its meter is decided (one cancelled meanwhile keeps its state).
        mine = [r for r in rows if r.id in taken and r.state == DELIVERED]
        states = await price_acks.device_states(conn, [r.id for r in mine])
        on_record = await price_acks.joined_devices(conn, [r.esi_id for r in mine])
        detail = f"no PriceAcknowledgement within {minutes} min of the delivery to the meter"
        device_ends: list[Transition] = []
        by_verdict: dict[str, list[Any]] = {}
        for r in mine:
            acknowledged, silent = silent_devices(states.get(r.id, {}), on_record.get(r.esi_id, []))
            device_ends.extend(Transition(r.id, r.request_id, r.party_id, r.esi_id, eui, NO_ACKNOWLEDGEMENT, now,
                                          detail) for eui in silent)
            by_verdict.setdefault(verdict(acknowledged, len(silent)), []).append(r)
        await deliveries.record_transitions(conn, device_ends)
        for state, group in by_verdict.items():
            reason = None if state == ACKNOWLEDGED else detail
            await deliveries.set_state(conn, group, state, now, reason=reason, only_from=[DELIVERED])
    return len(rows)
