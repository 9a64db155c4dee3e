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

SE_PROFILE_ID = 0x0109


class SEControllerApplication(ControllerApplication):  # type: ignore[misc]
    se_packet_hook: Callable[[zt.ZigbeePacket], None] | None = None

    def packet_received(self, packet: zt.ZigbeePacket) -> None:
        if packet.profile_id == SE_PROFILE_ID and self.se_packet_hook is not None:
            self.se_packet_hook(packet)
        super().packet_received(packet)
