"""EZSP chapter "Trust Center Frames" and what the trust center does on its own: devices joining
(the key checks and the join callbacks), leaving, removal, reachability."""

from __future__ import annotations

import asyncio
from typing import Any

import bellows.types as t

from simulators.ncp.ezsp.core import (
    NcpCore,
)
from simulators.ncp.han import (
    EmulatedDevice,
    JoinResult,
    Member,
    as_eui64,
    link_key_of,
    nwk_for,
)


class TrustCenterFrames(NcpCore):
    def _cmd_removeDevice(self, args: dict[str, Any]) -> dict[str, Any]:
        member = self.members.get(args["targetLong"])
        if member is None:
            return {"status": t.EmberStatus.INVALID_CALL}
        self._leave(member)
        return {"status": t.EmberStatus.SUCCESS}

    def join(self, device: EmulatedDevice) -> JoinResult:
        """A device associates and asks the trust center for the network key."""
        eui = as_eui64(device.eui64)
        if eui in self.members:
            return JoinResult.ALREADY_JOINED
        now = asyncio.get_running_loop().time()
        if not self.stack.network_up or now >= self.stack.permit_until:
            return JoinResult.NOT_PERMITTED  # no beacon with "permit join": nothing reaches the TC
        policy = self.stack.policies.get(t.EzspPolicyId.TRUST_CENTER_POLICY, 0)
        transient = self.stack.transient_keys.get(eui)
        key = link_key_of(device)
        taken = {m.nwk for m in self.members.values()}
        nwk = nwk_for(eui, taken)
        result = JoinResult.JOINED
        if not policy & t.EzspDecisionBitmask.ALLOW_JOINS:
            result = JoinResult.NOT_PERMITTED
        elif policy & t.EzspDecisionBitmask.JOINS_USE_INSTALL_CODE_KEY or transient is not None:
            if transient is None:
                result = JoinResult.NO_KEY
            elif transient != key:
                # The TC sends the network key under the registered key; the device cannot
                # decrypt it and gives up. The emulated TC reports that outcome as a denial.
                result = JoinResult.WRONG_KEY
        elif key is None or key != t.KeyData(b"ZigBeeAlliance09"):
            result = JoinResult.NO_KEY
        if result is not JoinResult.JOINED:
            self.callback(
                "trustCenterJoinHandler",
                newNodeId=t.EmberNodeId(nwk),
                newNodeEui64=eui,
                status=t.EmberDeviceUpdate.STANDARD_SECURITY_UNSECURED_JOIN,
                policyDecision=t.EmberJoinDecision.DENY_JOIN,
                parentOfNewNodeId=0x0000,
            )
            return result
        member = Member(device=device, eui64=eui, nwk=nwk, link_key=key)
        self.members[eui] = member
        self.nvram.neighbours[eui] = (nwk, member.node_type)
        self.stack.transient_keys.pop(eui, None)
        if member.node_type != t.EmberNodeType.ROUTER:
            self.callback(
                "childJoinHandler",
                index=len(self._children()) - 1,
                joining=t.Bool.true,
                childId=t.EmberNodeId(nwk),
                childEui64=eui,
                childType=member.node_type,
            )
        self.callback(
            "trustCenterJoinHandler",
            newNodeId=t.EmberNodeId(nwk),
            newNodeEui64=eui,
            status=t.EmberDeviceUpdate.STANDARD_SECURITY_UNSECURED_JOIN,
            policyDecision=t.EmberJoinDecision.USE_PRECONFIGURED_KEY,
            parentOfNewNodeId=0x0000,
        )
        device.attach(lambda cluster_id, frame: self.uplink_from(member, cluster_id, frame))
        attach_zdo = getattr(device, "attach_zdo", None)
        if attach_zdo is not None:  # a device that does SE service discovery and binding
            attach_zdo(lambda cluster_id, payload: self.zdo_from(member, cluster_id, payload), self.nvram.eui64)
        device.on_joined()
        return result

    def _leave(self, member: Member) -> None:
        self.members.pop(member.eui64, None)
        self.nvram.neighbours.pop(member.eui64, None)
        self.callback(
            "trustCenterJoinHandler",
            newNodeId=t.EmberNodeId(member.nwk),
            newNodeEui64=member.eui64,
            status=t.EmberDeviceUpdate.DEVICE_LEFT,
            policyDecision=t.EmberJoinDecision.NO_ACTION,
            parentOfNewNodeId=0x0000,
        )

    def leave(self, device: EmulatedDevice) -> bool:
        """The device leaves the network on its own (announces it)."""
        member = self.members.get(as_eui64(device.eui64))
        if member is None:
            return False
        self._leave(member)
        return True

    def set_reachable(self, device: EmulatedDevice, reachable: bool) -> None:
        """Power a device off (frames to it fail) or on again, without it leaving."""
        member = self.members.get(as_eui64(device.eui64))
        if member is not None:
            member.reachable = reachable
