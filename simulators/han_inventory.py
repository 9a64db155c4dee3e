"""What a simulated meter answers when asked what is on its HAN (issue 13): every device it holds a
record of (provisioned, find pending, joined or refused), in the wire layer's terms, so the
head-end emulators and the simulated routes give the same answer.

The meter knows a device's type and SE version only once it joined (its descriptors), and when it
last heard from it (its record's `last_heard`); it has no radio model, so no link quality.
"""

from __future__ import annotations

from ams_adapters.wire.common import HanRegistration, NoteKind, Notification
from simulators.addressing import eui64_str
from simulators.meter import SimMeter
from zigbee_se.clusters import se_device_type_name


def han_registrations(meter: SimMeter) -> tuple[HanRegistration, ...]:
    out = []
    for eui, record in sorted(meter.han.records.items()):
        joined = meter.devices.get(eui)
        device = joined.device if joined is not None else None
        out.append(HanRegistration(
            eui64=eui64_str(eui), state=record.status.value,
            device_type=se_device_type_name(device.device_type) if device is not None else None,
            se_version=device.profile.se_version if device is not None else None,
            last_seen=record.last_heard, reason=None if record.reason is None else str(record.reason)))
    return tuple(out)


def meter_id(meter: SimMeter) -> str:
    """The meter's identity as it reports it: its ESI EUI-64 (a swapped meter has another)."""
    return eui64_str(meter.eui64)


def inventory_note(transaction_id: str, meter: SimMeter, at: float) -> Notification:
    """The head-end's answer to a ``han_inventory`` request, as a notification."""
    return Notification(NoteKind.INVENTORY, transaction_id, meter.esi_id, at, meter_id=meter_id(meter),
                        registrations=han_registrations(meter))
