"""The coordinator's own view of its HAN (issue 13): what the radio route answers when asked what is
on the premise's HAN — the gateway's coordinator being that premise's ESI.

A device is listed when it is on the network (joined; find pending while zigpy interviews it),
when its join window is open now (provision requested), or when the coordinator refused it (failed,
with the reason); one leaving (zigpy still holds it for a moment) is not. A device the route's
records say joined but the coordinator no longer knows (a replaced stick without its backup) is
not listed either: that is the difference the gateway shows.
Last seen, LQI and RSSI are those of the last SE frame the coordinator received from the device
(the last hop's link, as EmberZNet reports it with every incoming message), or zigpy's stored ones
for a device not heard since the gateway started. No ZDO Mgmt_Lqi_req is sent: the last hop's
values come free with every frame, and a neighbour-table query per router costs air time on a
HAN that may be busy with a load-control event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ams_adapters.inventory import InventoryDevice, JoinState
from ams_adapters.radio.session_core import SessionCore
from ams_adapters.radio.state import DeviceState


class InventoryReport(SessionCore):
    if TYPE_CHECKING:
        async def inventory(self, *, include_removed: bool = False) -> list[Any]: ...

        @staticmethod
        def _device_type(device: Any) -> str | None: ...

    async def han_devices(self) -> tuple[InventoryDevice, ...]:
        """Every device the coordinator knows now (the module docstring says which)."""
        app = self.app
        own = app.state.node_info.ieee
        on_network = {str(ieee): device for ieee, device in app.devices.items() if ieee != own}
        records = {r.eui64: r for r in await self.inventory()}
        out = []
        for eui64 in sorted(set(on_network) | set(records)):
            device, record = on_network.get(eui64), records.get(eui64)
            recorded_type = record.device_type if record is not None else None
            if device is not None and eui64 in self._present:
                state, device_type = JoinState.JOINED, self._device_type(device) or recorded_type
            elif device is not None and record is not None and record.state is DeviceState.FIND_PENDING:
                state, device_type = JoinState.FIND_PENDING, recorded_type  # zigpy is interviewing it
            elif record is not None and record.state is DeviceState.FAILED:
                state, device_type = JoinState.FAILED, recorded_type
            elif record is not None and eui64 in self._joins:
                state, device_type = JoinState.PROVISION_REQUESTED, recorded_type
            else:
                continue  # on record only: the coordinator does not know it
            heard = self._heard.get(eui64)
            out.append(InventoryDevice(
                eui64=eui64, join_state=state, device_type=device_type,
                last_seen=heard[0] if heard else getattr(device, "last_seen", None),
                lqi=heard[1] if heard else getattr(device, "lqi", None),
                rssi=heard[2] if heard else getattr(device, "rssi", None),
                reason=record.reason if state is JoinState.FAILED and record is not None else None))
        return tuple(out)
