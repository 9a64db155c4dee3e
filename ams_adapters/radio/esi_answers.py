"""Frames from devices: SE packets and ZDO requests the coordinator hands up, turned into events,
and the ESI's answers (`zigbee_se.esi`) sent back to the asking device."""

from __future__ import annotations

import asyncio
from typing import Any

import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from ams_adapters.radio.events import (
    CbkeRequested,
    DeviceBound,
    DeviceFrame,
)
from ams_adapters.radio.session_core import (
    KEY_ESTABLISHMENT,
    LOGGER,
    SessionCore,
)
from zigbee_se import SE_PROFILE_ID, DecodeError, decode_frame


class EsiAnswering(SessionCore):
    def _eui64_of(self, nwk: int) -> str | None:
        app = self.app
        if app is None:
            return None
        for device in app.devices.values():
            if device.nwk == nwk:
                return str(device.ieee)
        return None

    @staticmethod
    def _source_nwk(packet: zt.ZigbeePacket) -> int:
        """The NWK address a device frame came from (devices send with NWK addressing)."""
        assert packet.src is not None
        return int(packet.src.address)  # type: ignore[arg-type]

    def _on_se_packet(self, packet: zt.ZigbeePacket) -> None:
        eui64 = self._eui64_of(self._source_nwk(packet)) or f"nwk:{self._source_nwk(packet):04x}"
        data = bytes(packet.data.serialize())
        encrypted = zt.TransmitOptions.APS_Encryption in packet.tx_options
        self._heard[eui64] = (self.clock(), packet.lqi, packet.rssi)  # the HAN inventory's last seen
        if self._settle_answer(eui64, packet.cluster_id, data):
            return  # the meter's answer to the gateway's own read (radio/metering.py)
        if packet.cluster_id == KEY_ESTABLISHMENT:
            self._emit(CbkeRequested(eui64))
            return
        try:
            frame = decode_frame(packet.cluster_id, data)
        except DecodeError as exc:
            self._emit(
                DeviceFrame(eui64, packet.cluster_id, data, None, None, str(exc), packet.lqi, packet.rssi, encrypted)
            )
            return
        self._emit(
            DeviceFrame(
                eui64, packet.cluster_id, data, frame.command, frame.fields, None, packet.lqi, packet.rssi, encrypted
            )
        )
        for cluster, reply in self.esi.answer(frame, self.clock(), eui64):
            task = asyncio.get_running_loop().create_task(self._reply(packet, cluster, reply))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_se_zdo(self, packet: zt.ZigbeePacket, command: zdo_t.ZDOCmd, args: list[Any]) -> None:
        """Service discovery and binding by devices registering with the ESI (the NCP answered)."""
        sender = self._eui64_of(self._source_nwk(packet))
        if command == zdo_t.ZDOCmd.Match_Desc_req:
            LOGGER.info("%s looks for profile 0x%04X servers %s", sender, int(args[1]), [hex(c) for c in args[2]])
            return
        src, src_ep, cluster, dst = args
        own = self.app.state.node_info.ieee if self.app is not None else None
        if src != own or int(src_ep) != self.config.se_endpoint or getattr(dst, "addrmode", None) != 3:
            return  # not a binding of our ESI endpoint to a device (the stack refused it)
        eui64, endpoint = str(dst.ieee), int(dst.endpoint)
        bound = command == zdo_t.ZDOCmd.Bind_req
        if bound:
            self._bindings[(eui64, int(cluster))] = endpoint
        else:
            self._bindings.pop((eui64, int(cluster)), None)
        self._emit(DeviceBound(eui64, int(cluster), endpoint, bound))

    def bound_devices(self, cluster_id: int) -> list[str]:
        """Devices that bound this SE cluster to the ESI (they asked for unsolicited updates)."""
        return sorted(eui for (eui, cluster) in self._bindings if cluster == cluster_id)

    async def _reply(self, packet: zt.ZigbeePacket, cluster: int, frame: bytes) -> None:
        """Answer a device on the endpoint pair it used (ESI replies are idempotent reads)."""
        app = self.app
        eui64 = self._eui64_of(self._source_nwk(packet))
        device = app.devices.get(zt.EUI64.convert(eui64)) if app and eui64 else None
        if device is None:
            return
        try:
            await app.request(
                device,
                SE_PROFILE_ID,
                cluster,
                packet.dst_ep,
                packet.src_ep,
                frame[1],
                frame,
                expect_reply=False,
                ask_for_ack=True,
                aps_encryption=True,
            )
        except Exception as exc:  # the device asks again if it needs to
            LOGGER.info("ESI reply to %s not delivered: %r", device.ieee, exc)
