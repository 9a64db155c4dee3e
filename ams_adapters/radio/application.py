"""bellows' ControllerApplication with the one hook an SE ESI needs.

zigpy parses ZCL only on profiles 0x0104/0xC05E and drops 0x0109 frames as "custom profile"
(RADIO.md §2). Its `handle_message` listener still sees them, but without LQI, RSSI or whether
the frame was APS-encrypted — which an ESI must check. Wrapping `packet_received` gives the whole
packet before zigpy drops it; everything else is bellows as shipped.
"""

from __future__ import annotations

from collections.abc import Callable

import zigpy.types as zt
from bellows.zigbee.application import ControllerApplication

from zigbee_se import SE_PROFILE_ID

HA_PROFILE_ID = 0x0104
# General clusters zigpy's interview reads (Basic: manufacturer and model). On an SE device they
# live on the 0x0109 endpoint, and zigpy would drop the answers and time out the interview.
GENERAL_CLUSTERS = frozenset({0x0000})


class SEControllerApplication(ControllerApplication):  # type: ignore[misc]
    se_packet_hook: Callable[[zt.ZigbeePacket], None] | None = None

    def packet_received(self, packet: zt.ZigbeePacket) -> None:
        if packet.profile_id == SE_PROFILE_ID:
            if packet.cluster_id in GENERAL_CLUSTERS:
                # The frame format of a general cluster is the same on every profile: let zigpy
                # parse it as Home Automation so its interview gets the manufacturer and model.
                super().packet_received(packet.replace(profile_id=HA_PROFILE_ID))
                return
            if self.se_packet_hook is not None:
                self.se_packet_hook(packet)
        super().packet_received(packet)
