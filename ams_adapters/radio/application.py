"""bellows' ControllerApplication with the hooks an SE ESI needs.

zigpy parses ZCL only on profiles 0x0104/0xC05E and drops 0x0109 frames as "custom profile"
(RADIO.md §2). Its `handle_message` listener still sees them, but without LQI, RSSI or whether
the frame was APS-encrypted — which an ESI must check. Wrapping `packet_received` gives the whole
packet before zigpy drops it; everything else is bellows as shipped.

ZDO from devices looking for the ESI (SE registration, SE_BEHAVIOUR.md §6): the EmberZNet stack
on the NCP answers Match_Desc from the endpoints the host added (our SE endpoint) and keeps the
Bind_req a device sends naming the ESI as source in its binding table; bellows sets
APP_RECEIVES_SUPPORTED_ZDO_REQUESTS, so the host gets a copy of each. zigpy would answer that
copy of a Match_Desc for profile 0x0109 itself, with an empty match list (it only knows 0x0104):
a second, contradicting answer a device may take. The copy is therefore kept from zigpy, and
both requests go to `se_zdo_hook` so the route knows who registered and what is bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zigpy.types as zt
import zigpy.zdo.types as zdo_t
from bellows.zigbee.application import ControllerApplication

from zigbee_se import SE_PROFILE_ID

HA_PROFILE_ID = 0x0104
# General clusters zigpy's interview reads (Basic: manufacturer and model). On an SE device they
# live on the 0x0109 endpoint, and zigpy would drop the answers and time out the interview.
GENERAL_CLUSTERS = frozenset({0x0000})
ZDO_PROFILE_ID = 0x0000
SE_ZDO_REQUESTS = frozenset({zdo_t.ZDOCmd.Match_Desc_req, zdo_t.ZDOCmd.Bind_req, zdo_t.ZDOCmd.Unbind_req})


def parse_zdo(packet: zt.ZigbeePacket) -> tuple[zdo_t.ZDOCmd, int, list[Any]] | None:
    """(command, tsn, arguments) of a ZDO request the route cares about, else None."""
    try:
        command = zdo_t.ZDOCmd(packet.cluster_id)  # type: ignore[no-untyped-call]
    except ValueError:
        return None
    if command not in SE_ZDO_REQUESTS:
        return None
    data = bytes(packet.data.serialize())
    try:
        args, _ = zt.deserialize(data[1:], zdo_t.CLUSTERS[command][1])  # type: ignore[no-untyped-call]
    except (ValueError, KeyError):
        return None
    return command, data[0], list(args)


class SEControllerApplication(ControllerApplication):  # type: ignore[misc]
    se_packet_hook: Callable[[zt.ZigbeePacket], None] | None = None
    se_zdo_hook: Callable[[zt.ZigbeePacket, zdo_t.ZDOCmd, list[Any]], None] | None = None
    # Set when this start formed the network. bellows resets the NCP after forming and does not
    # add the endpoints again (the NCP forgets them on reset, and refuses addEndpoint once the
    # stack runs), so the NCP would not answer Match_Desc for the SE endpoint until restarted.
    formed_now = False

    async def form_network(self, *args: Any, **kwargs: Any) -> None:
        self.formed_now = True
        await super().form_network(*args, **kwargs)

    def packet_received(self, packet: zt.ZigbeePacket) -> None:
        if packet.profile_id == ZDO_PROFILE_ID and packet.dst_ep == 0:
            parsed = parse_zdo(packet)
            if parsed is not None:
                command, _tsn, args = parsed
                if self.se_zdo_hook is not None:
                    self.se_zdo_hook(packet, command, args)
                if command == zdo_t.ZDOCmd.Match_Desc_req and args[1] == SE_PROFILE_ID:
                    return  # the NCP answered it from our SE endpoint; zigpy's answer would be empty
        if packet.profile_id == SE_PROFILE_ID:
            if packet.cluster_id in GENERAL_CLUSTERS:
                # The frame format of a general cluster is the same on every profile: let zigpy
                # parse it as Home Automation so its interview gets the manufacturer and model.
                super().packet_received(packet.replace(profile_id=HA_PROFILE_ID))
                return
            if self.se_packet_hook is not None:
                self.se_packet_hook(packet)
        super().packet_received(packet)
