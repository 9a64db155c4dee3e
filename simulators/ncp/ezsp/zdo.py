# mypy: disable-error-code="no-untyped-call"
# (zigpy's ZDO types and (de)serializers carry no annotations.)
"""The stack's ZDO (not an EZSP chapter): what EmberZNet answers itself (Match_Desc, Bind/Unbind into
its binding table) and what it answers on behalf of the emulated devices (descriptors, leave)."""

from __future__ import annotations

from typing import Any

import bellows.types as t
import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from simulators.ncp.ezsp.core import (
    NcpCore,
)
from simulators.ncp.han import (
    Member,
)

MANUFACTURER_CODE = 0x1049  # Silicon Labs, what EmberZNet reports in its node descriptor


class ZdoStack(NcpCore):
    def zdo_from(self, member: Member, cluster_id: int, payload: bytes) -> bool:
        """A device sends a ZDO request to the coordinator (or broadcasts it). The EmberZNet stack
        answers Match_Desc from the endpoints the host added and keeps Bind_req/Unbind_req naming
        this node as source in its binding table; with APPLICATION_ZDO_FLAGS as bellows sets them
        (APP_RECEIVES_SUPPORTED_ZDO_REQUESTS) the host also gets a copy of each request."""
        if member.eui64 not in self.members or not member.reachable or not self.stack.network_up:
            return False
        reply = self._stack_zdo_answer(cluster_id, payload)
        if reply is not None:
            deliver = getattr(member.device, "deliver_zdo", None)
            if deliver is not None:
                self._later(self.profile.aps_ack_delay_s, lambda: deliver(*reply))
        self._incoming(
            sender=member.nwk,
            profile=0,
            cluster=cluster_id,
            src_ep=0,
            dst_ep=0,
            payload=payload,
            options=t.EmberApsOption.APS_OPTION_NONE,
            sequence=self.stack.next_aps_sequence(),
        )
        return True

    def _stack_zdo_answer(self, cluster_id: int, payload: bytes) -> tuple[int, bytes] | None:
        try:
            command = zdo_t.ZDOCmd(cluster_id)
            args, _ = zt.deserialize(payload[1:], zdo_t.CLUSTERS[command][1])
        except (ValueError, KeyError):
            return None
        status = zdo_t.Status.SUCCESS
        values: list[Any]
        if command == zdo_t.ZDOCmd.Match_Desc_req:
            _nwk, profile, in_clusters, out_clusters = args
            # The request names the clusters it looks for on the remote: in = servers, out = clients.
            matches = [
                ep
                for ep, (prof, ins, outs) in sorted(self.stack.endpoints.items())
                if prof == profile and (set(in_clusters) & set(ins) or set(out_clusters) & set(outs))
            ]
            rsp, values = zdo_t.ZDOCmd.Match_Desc_rsp, [status, 0x0000, matches]
        elif command in (zdo_t.ZDOCmd.Bind_req, zdo_t.ZDOCmd.Unbind_req):
            src, src_ep, cluster, dst = args
            entry = (int(src_ep), int(cluster), t.EUI64(dst.ieee), int(dst.endpoint))
            bind = command == zdo_t.ZDOCmd.Bind_req
            rsp = zdo_t.ZDOCmd.Bind_rsp if bind else zdo_t.ZDOCmd.Unbind_rsp
            if t.EUI64(src) != self.nvram.eui64:
                status = zdo_t.Status.NOT_SUPPORTED  # a binding on another node's behalf
            elif int(src_ep) not in self.stack.endpoints:
                status = zdo_t.Status.INVALID_EP
            elif bind and entry not in self.nvram.bindings:
                if len(self.nvram.bindings) >= self.profile.binding_table_size:
                    status = zdo_t.Status.TABLE_FULL
                else:
                    self.nvram.bindings.append(entry)
            elif not bind:
                if entry in self.nvram.bindings:
                    self.nvram.bindings.remove(entry)
                else:
                    status = zdo_t.Status.NO_ENTRY
            values = [status]
        else:
            return None
        return int(rsp), bytes([payload[0]]) + zt.serialize(values, zdo_t.CLUSTERS[rsp][1])

    def _answer_zdo(self, member: Member | None, aps: t.EmberApsFrame, payload: bytes) -> None:
        if not payload:
            return
        tsn, body = payload[0], payload[1:]
        try:
            command = zdo_t.ZDOCmd(aps.clusterId)
            _names, types = zdo_t.CLUSTERS[command]
            args, _ = zt.deserialize(body, types)
        except (ValueError, KeyError):
            return
        nwk = 0x0000 if member is None else member.nwk
        reply: tuple[zdo_t.ZDOCmd, list[Any]] | None = None
        ok = zdo_t.Status.SUCCESS
        if command == zdo_t.ZDOCmd.Node_Desc_req:
            reply = (zdo_t.ZDOCmd.Node_Desc_rsp, [ok, nwk, self._node_descriptor(member)])
        elif command == zdo_t.ZDOCmd.Active_EP_req:
            eps = sorted(self.stack.endpoints) if member is None else [member.endpoint]
            reply = (zdo_t.ZDOCmd.Active_EP_rsp, [ok, nwk, eps])
        elif command == zdo_t.ZDOCmd.Simple_Desc_req:
            reply = (zdo_t.ZDOCmd.Simple_Desc_rsp, self._simple_desc(member, nwk, int(args[1])))
        elif command == zdo_t.ZDOCmd.Mgmt_Leave_req and member is not None:
            reply = (zdo_t.ZDOCmd.Mgmt_Leave_rsp, [ok])
        elif command in (zdo_t.ZDOCmd.Bind_req, zdo_t.ZDOCmd.Unbind_req):
            bind = command == zdo_t.ZDOCmd.Bind_req
            reply = (zdo_t.ZDOCmd.Bind_rsp if bind else zdo_t.ZDOCmd.Unbind_rsp, [ok])
        elif command == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req:
            reply = (zdo_t.ZDOCmd.Mgmt_Permit_Joining_rsp, [ok])
        if reply is None:
            return
        rsp_cmd, values = reply
        _names, rsp_types = zdo_t.CLUSTERS[rsp_cmd]
        data = bytes([tsn]) + zt.serialize(values, rsp_types)
        self._incoming(
            sender=nwk,
            profile=0,
            cluster=rsp_cmd,
            src_ep=0,
            dst_ep=0,
            payload=data,
            options=t.EmberApsOption.APS_OPTION_NONE,
            sequence=self.stack.next_aps_sequence(),
        )
        if command == zdo_t.ZDOCmd.Mgmt_Leave_req and member is not None:
            self._leave(member)

    def _node_descriptor(self, member: Member | None) -> zdo_t.NodeDescriptor:
        if member is None:
            logical, mac = zdo_t.LogicalType.Coordinator, 0x8E
        elif member.node_type == t.EmberNodeType.ROUTER:
            logical, mac = zdo_t.LogicalType.Router, 0x8E
        else:
            logical, mac = zdo_t.LogicalType.EndDevice, 0x80
        return zdo_t.NodeDescriptor(
            logical_type=logical,
            complex_descriptor_available=0,
            user_descriptor_available=0,
            reserved=0,
            aps_flags=0,
            frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
            mac_capability_flags=zdo_t.NodeDescriptor.MACCapabilityFlags(mac),
            manufacturer_code=MANUFACTURER_CODE,
            maximum_buffer_size=82,
            maximum_incoming_transfer_size=128,
            server_mask=0x2C00 if member is None else 0x0000,
            maximum_outgoing_transfer_size=128,
            descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability(0),
        )

    def _simple_desc(self, member: Member | None, nwk: int, endpoint: int) -> list[Any]:
        if member is None:
            if endpoint not in self.stack.endpoints:
                return [zdo_t.Status.NOT_ACTIVE, nwk, None]
            profile, ins, outs = self.stack.endpoints[endpoint]
            device_type = 0x0005
        else:
            if endpoint != member.endpoint:
                return [zdo_t.Status.NOT_ACTIVE, nwk, None]
            profile, ins, outs = member.profile_id, member.input_clusters, member.output_clusters
            device_type = member.device_type
        desc = zdo_t.SizePrefixedSimpleDescriptor(
            endpoint=endpoint,
            profile=profile,
            device_type=device_type,
            device_version=0,
            input_clusters=ins,
            output_clusters=outs,
        )
        return [zdo_t.Status.SUCCESS, nwk, desc]
