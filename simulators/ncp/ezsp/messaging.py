"""EZSP chapter "Messaging Frames": unicast/broadcast/multicast to the HAN with the APS ACK timing,
uplinks from devices, the address and multicast tables."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import bellows.types as t

from simulators.ncp.ezsp.core import (
    NcpCore,
    zero_value,
)
from simulators.ncp.han import (
    Member,
)
from zigbee_se import SE_PROFILE_ID

NO_ACK_DELAY_S = 0.3


class MessagingFrames(NcpCore):
    def _cmd_sendUnicast(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        aps: t.EmberApsFrame = args["apsFrame"].replace(sequence=t.uint8_t(self.stack.next_aps_sequence()))
        nwk = int(args["indexOrDestination"])
        tag = int(args["messageTag"])
        payload = bytes(args["messageContents"])

        def sent(status: t.EmberStatus) -> None:
            self.counters[
                t.EmberCounterType.COUNTER_APS_DATA_TX_UNICAST_SUCCESS
                if status == t.EmberStatus.SUCCESS
                else t.EmberCounterType.COUNTER_APS_DATA_TX_UNICAST_FAILED
            ] += 1
            self.callback(
                "messageSentHandler",
                type=t.EmberOutgoingMessageType.OUTGOING_DIRECT,
                indexOrDestination=nwk,
                apsFrame=aps,
                messageTag=tag,
                status=status,
                messageContents=t.LVBytes(payload),
            )

        if nwk == 0x0000:
            sent(t.EmberStatus.SUCCESS)
            if aps.profileId == 0:
                self._answer_zdo(None, aps, payload)
            return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

        member = self._member_by_nwk(nwk)
        encrypted = bool(aps.options & t.EmberApsOption.APS_OPTION_ENCRYPTION)
        needs_aps = member is not None and bool(getattr(member.device, "requires_aps_encryption", False))
        refused = needs_aps and not encrypted and aps.profileId != 0
        if member is None or not member.reachable or refused:
            # No APS ACK arrives: the stack retries, then reports the failure.
            self._later(NO_ACK_DELAY_S, lambda: sent(t.EmberStatus.DELIVERY_FAILED))
            return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

        def acked() -> None:
            if member.eui64 not in self.members or not member.reachable:
                sent(t.EmberStatus.DELIVERY_FAILED)
                return
            sent(t.EmberStatus.SUCCESS)
            if aps.profileId == 0:
                self._answer_zdo(member, aps, payload)
            else:
                member.esi_endpoint = int(aps.sourceEndpoint)
                self._deliver(member, aps.clusterId, payload)

        self._later(self.profile.aps_ack_delay_s, acked)
        return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

    def _cmd_sendBroadcast(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        aps = args["apsFrame"].replace(sequence=t.uint8_t(self.stack.next_aps_sequence()))
        self.callback(
            "messageSentHandler",
            type=t.EmberOutgoingMessageType.OUTGOING_BROADCAST,
            indexOrDestination=int(args["destination"]),
            apsFrame=aps,
            messageTag=int(args["messageTag"]),
            status=t.EmberStatus.SUCCESS,
            messageContents=args["messageContents"],
        )
        return {"status": t.EmberStatus.SUCCESS, "sequence": aps.sequence}

    def _cmd_sendMulticast(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.stack.network_up:
            return {"status": t.EmberStatus.NETWORK_DOWN}
        return {"status": t.EmberStatus.SUCCESS, "sequence": self.stack.next_aps_sequence()}

    def _deliver(self, member: Member, cluster_id: int, payload: bytes) -> None:
        result = member.device.deliver(cluster_id, payload)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _esi_endpoint(self, cluster_id: int) -> int:
        se = [(ep, ins) for ep, (prof, ins, _outs) in sorted(self.stack.endpoints.items()) if prof == SE_PROFILE_ID]
        for ep, ins in se:
            if cluster_id in ins:
                return ep
        return se[0][0] if se else 1

    def uplink_from(self, member: Member, cluster_id: int, zcl_frame: bytes) -> bool:
        """A device transmits a ZCL frame to the coordinator. False if it cannot be heard."""
        if member.eui64 not in self.members or not member.reachable or not self.stack.network_up:
            return False
        member.aps_counter = (member.aps_counter + 1) % 256
        self._incoming(
            sender=member.nwk,
            profile=member.profile_id,
            cluster=cluster_id,
            src_ep=member.endpoint,
            dst_ep=member.esi_endpoint or self._esi_endpoint(cluster_id),
            payload=zcl_frame,
            options=t.EmberApsOption.APS_OPTION_ENCRYPTION | t.EmberApsOption.APS_OPTION_RETRY,
            sequence=member.aps_counter,
        )
        return True

    def _cmd_getAddressTableRemoteNodeId(self, args: dict[str, Any]) -> dict[str, Any]:
        routers = self._routers()
        index = int(args["addressTableIndex"])
        return {"nodeId": routers[index].nwk if index < len(routers) else 0xFFFF}

    def _cmd_getAddressTableRemoteEui64(self, args: dict[str, Any]) -> dict[str, Any]:
        routers = self._routers()
        index = int(args["addressTableIndex"])
        blank = t.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
        return {"eui64": routers[index].eui64 if index < len(routers) else blank}

    def _cmd_getMulticastTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        entry = self.stack.multicast.get(int(args["index"]))
        return {
            "status": t.EmberStatus.SUCCESS,
            "value": entry or zero_value(t.EmberMulticastTableEntry),
        }

    def _cmd_setMulticastTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        self.stack.multicast[int(args["index"])] = args["value"]
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_lookupNodeIdByEui64(self, args: dict[str, Any]) -> dict[str, Any]:
        eui = args["eui64"]
        if eui == self.nvram.eui64:
            return {"nodeId": 0x0000}
        member = self.members.get(eui)
        return {"nodeId": member.nwk if member else 0xFFFF}

    def _cmd_lookupEui64ByNodeId(self, args: dict[str, Any]) -> dict[str, Any]:
        member = self._member_by_nwk(int(args["nodeId"]))
        if member is None:
            return {"status": t.EmberStatus.ERR_FATAL}
        return {"status": t.EmberStatus.SUCCESS, "eui64": member.eui64}
