"""ZigBee Smart Energy 1.x ZCL codec: Price, DRLC, Messaging commands, Metering and Time attributes,
the ZCL header, data types and install codes. Pure and synchronous; no I/O.

    >>> from zigbee_se import encode_frame, decode_frame
    >>> frame = encode_frame("messaging", "cancel_message", {"message_id": 7}, tsn=1)
    >>> frame.hex()
    '0901010700000000'
    >>> decode_frame("messaging", frame).fields
    {'message_id': 7, 'message_control': 0}
"""

from zigbee_se import install_code
from zigbee_se.attributes import ATTRIBUTES, AttributeDef, TimeStatus, attribute_by_name, find_attribute
from zigbee_se.clusters import SE_PROFILE_ID, ClusterId, cluster_name, resolve_cluster
from zigbee_se.codec import (
    ALL_COMMANDS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_SE_VERSION,
    DecodedFrame,
    command_definitions,
    commands_of,
    decode_frame,
    encode_frame,
    encode_payload,
    max_text_bytes,
)
from zigbee_se.commands.drlc import EventStatus
from zigbee_se.conversions import (
    UNTIL_CHANGED,
    UTC_INVALID,
    UTC_NOW,
    celsius_from_offset,
    celsius_from_set_point,
    datetime_from_utc,
    decimal_to_price,
    offset_from_celsius,
    price_to_decimal,
    set_point_from_celsius,
    unix_from_utc,
    utc_from_datetime,
    utc_from_unix,
)
from zigbee_se.errors import DecodeError, EncodeError, SECodecError
from zigbee_se.header import FrameType, ZCLHeader, decode_header, encode_header
from zigbee_se.install_code import InstallCode, InstallCodeError, parse_install_code
from zigbee_se.schema import CommandDef, Direction, Field, NibblePair
from zigbee_se.status import ZclStatus, status_text
from zigbee_se.versions import SEVersion

__all__ = [
    "ALL_COMMANDS",
    "ATTRIBUTES",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_SE_VERSION",
    "SE_PROFILE_ID",
    "UNTIL_CHANGED",
    "UTC_INVALID",
    "UTC_NOW",
    "AttributeDef",
    "ClusterId",
    "CommandDef",
    "DecodeError",
    "DecodedFrame",
    "Direction",
    "EncodeError",
    "EventStatus",
    "Field",
    "FrameType",
    "InstallCode",
    "InstallCodeError",
    "NibblePair",
    "SECodecError",
    "SEVersion",
    "TimeStatus",
    "ZCLHeader",
    "ZclStatus",
    "attribute_by_name",
    "celsius_from_offset",
    "celsius_from_set_point",
    "cluster_name",
    "command_definitions",
    "commands_of",
    "datetime_from_utc",
    "decimal_to_price",
    "decode_frame",
    "decode_header",
    "encode_frame",
    "encode_header",
    "encode_payload",
    "find_attribute",
    "install_code",
    "max_text_bytes",
    "offset_from_celsius",
    "parse_install_code",
    "price_to_decimal",
    "resolve_cluster",
    "set_point_from_celsius",
    "status_text",
    "unix_from_utc",
    "utc_from_datetime",
    "utc_from_unix",
]
