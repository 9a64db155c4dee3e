"""EZSP chapter "Networking Frames": network state, forming, leaving, permit joining, the child table."""

from __future__ import annotations

import asyncio
from typing import Any

import bellows.types as t

from simulators.ncp.ezsp.core import (
    NcpCore,
    zero_value,
)
from simulators.ncp.han import (
    JoinResult,
    as_eui64,
)

PAIRING_DELAY_S = 0.05  # how long the stack retries a unicast before reporting DELIVERY_FAILED


class NetworkingFrames(NcpCore):
    def _cmd_networkState(self, args: dict[str, Any]) -> dict[str, Any]:
        up = self.stack.network_up
        return {"status": t.EmberNetworkStatus.JOINED_NETWORK if up else t.EmberNetworkStatus.NO_NETWORK}

    def _network_up(self) -> None:
        self.stack.network_up = True
        self.callback("stackStatusHandler", status=t.EmberStatus.NETWORK_UP)

    def _cmd_networkInit(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.nvram.formed:
            return {"status": t.EmberStatus.NOT_JOINED}
        if self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        self._network_up()
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_formNetwork(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        if self.nvram.security is None:
            return {"status": t.EmberStatus.SECURITY_STATE_NOT_SET}
        self.nvram.parameters = args["parameters"]
        self.nvram.formed = True
        self._network_up()
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_leaveNetwork(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        self.stack.network_up = False
        self.nvram.formed = False
        self.members.clear()
        self.nvram.neighbours.clear()
        self.callback("stackStatusHandler", status=t.EmberStatus.NETWORK_DOWN)
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_getNetworkParameters(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up or self.nvram.parameters is None:
            return {"status": t.EmberStatus.NOT_JOINED, "nodeType": t.EmberNodeType.UNKNOWN_DEVICE}
        return {
            "status": t.EmberStatus.SUCCESS,
            "nodeType": t.EmberNodeType.COORDINATOR,
            "parameters": self.nvram.parameters,
        }

    def _cmd_permitJoining(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        duration = int(args["duration"])
        now = asyncio.get_running_loop().time()
        self.stack.permit_until = float("inf") if duration == 0xFF else now + duration
        if duration and self.pairing:
            # A device in pairing mode hears the next beacon with "permit join" set.
            self._later(PAIRING_DELAY_S, self._join_pairing_devices)
        return {"status": t.EmberStatus.SUCCESS}

    def _join_pairing_devices(self) -> None:
        for device in list(self.pairing):
            result = self.join(device)
            self.join_log.append((str(as_eui64(device.eui64)), result))
            if result in (JoinResult.JOINED, JoinResult.ALREADY_JOINED):
                self.pairing.remove(device)

    def _cmd_getChildData(self, args: dict[str, Any]) -> dict[str, Any]:
        children = self._children()
        index = int(args["index"])
        if index >= len(children):
            return {"status": t.EmberStatus.NOT_JOINED}
        child = children[index]
        data = zero_value(t.EmberChildDataV10).replace(
            eui64=child.eui64, type=child.node_type, id=t.EmberNodeId(child.nwk)
        )
        return {"status": t.EmberStatus.SUCCESS, "child_data": data}

    def _cmd_setChildData(self, args: dict[str, Any]) -> dict[str, Any]:
        data = args["child_data"]
        self.nvram.neighbours[data.eui64] = (int(data.id), data.type)
        return {"status": t.EmberStatus.SUCCESS}
