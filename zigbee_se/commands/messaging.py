"""Messaging cluster 0x0703 (SE_FRAMES.md §4). Sources: Wireshark, Silicon Labs AF API, ZBOSS.
Note MessageConfirmation is client->server 0x01; 0x00 in that direction is GetLastMessage."""

from __future__ import annotations

from zigbee_se.clusters import ClusterId
from zigbee_se.schema import CommandDef, Direction, Field
from zigbee_se.types import CharString, map8, uint16, uint32, utc_time
from zigbee_se.versions import SEVersion

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
V12 = SEVersion.V1_2
MESSAGING = ClusterId.MESSAGING

# bits 0-1 transmission, 2-3 importance, 5 enhanced confirmation required, 7 confirmation required;
# bits 4 and 6 are reserved.
MESSAGE_CONTROL_MASK = 0xAF
MESSAGE_CONTROL_CONFIRMATION_REQUIRED = 0x80
MESSAGE_CONTROL_ENHANCED_CONFIRMATION = 0x20


def _display_fields() -> tuple[Field, ...]:
    return (
        Field("message_id", uint32),
        Field("message_control", map8, mask=MESSAGE_CONTROL_MASK),
        Field("start_time", utc_time, doc="0 = now"),
        Field("duration_in_minutes", uint16, doc="0xffff = until changed"),
        Field("message", CharString(), doc="UTF-8; the frame budget usually limits it to ~57 bytes"),
        Field("extended_message_control", map8, since=V12, optional=True, default=0, mask=0x01,
              doc="bit 0 = message confirmation status"),
    )


DISPLAY_MESSAGE = CommandDef(MESSAGING, S2C, 0x00, "display_message", _display_fields())

CANCEL_MESSAGE = CommandDef(
    MESSAGING, S2C, 0x01, "cancel_message",
    (
        Field("message_id", uint32),
        Field("message_control", map8, default=0, doc="deprecated in SE 1.2: send 0x00"),
    ),
)

DISPLAY_PROTECTED_MESSAGE = CommandDef(
    MESSAGING, S2C, 0x02, "display_protected_message", _display_fields(), since=V12
)

CANCEL_ALL_MESSAGES = CommandDef(
    MESSAGING, S2C, 0x03, "cancel_all_messages",
    (Field("implementation_date_time", utc_time, doc="0 = now"),),
    since=V12,
)

GET_LAST_MESSAGE = CommandDef(MESSAGING, C2S, 0x00, "get_last_message", ())

MESSAGE_CONFIRMATION = CommandDef(
    MESSAGING, C2S, 0x01, "message_confirmation",
    (
        Field("message_id", uint32),
        Field("confirmation_time", utc_time),
        Field("message_confirmation_control", map8, since=V12, optional=True, default=0,
              mask=0x03, doc="bit 0 = 'NO' returned, bit 1 = 'YES' returned"),
        Field("message_response", CharString(), since=V12, optional=True, default=""),
    ),
)

GET_MESSAGE_CANCELLATION = CommandDef(
    MESSAGING, C2S, 0x02, "get_message_cancellation",
    (Field("earliest_implementation_time", utc_time),),
    since=V12,
)

COMMANDS = (
    DISPLAY_MESSAGE,
    CANCEL_MESSAGE,
    DISPLAY_PROTECTED_MESSAGE,
    CANCEL_ALL_MESSAGES,
    GET_LAST_MESSAGE,
    MESSAGE_CONFIRMATION,
    GET_MESSAGE_CANCELLATION,
)
