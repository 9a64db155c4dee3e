"""Demand Response and Load Control cluster 0x0701 (SE_FRAMES.md §3). Sources: Wireshark,
Silicon Labs AF API, Espressif/ZBOSS drlc headers, Digi SE records, Exegin sizes."""

from __future__ import annotations

import enum

from zigbee_se.clusters import ClusterId
from zigbee_se.schema import CommandDef, Direction, Field
from zigbee_se.types import (
    FixedOctets,
    enum8,
    int8,
    int16,
    map8,
    map16,
    uint8,
    uint16,
    uint32,
    utc_time,
)
from zigbee_se.versions import SEVersion

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
DRLC = ClusterId.DRLC

MAX_EVENT_DURATION_MINUTES = 1440
DEVICE_CLASS_MASK = 0x0FFF  # bits 12-15 reserved
SIGNATURE_LENGTH = 42  # fixed, no length prefix (BitCloud, ZBOSS signature[42])
UNSIGNED_SIGNATURE = b"\xff" * SIGNATURE_LENGTH  # Silicon Labs' dummy signature with type 0x00



def _set_point(name: str) -> Field:
    """Set points are 0.01 °C from absolute zero up; -32768 (0x8000) is "not used"."""
    return Field(
        name, int16, sentinel=-0x8000, min=-27315, max=0x7FFF,
        limit="-27315..32767 (0.01 °C, not below absolute zero), or -32768 (not used)",
    )


class EventStatus(enum.IntEnum):
    """Report Event Status codes (SE_FRAMES.md §3.5; SE_BEHAVIOUR.md §1.11 says when each is sent).

    The one definition: devices, the gateway's delivery states (``name.lower()``, e.g.
    ``rejected_expired``) and the technician's CLI (``text``) all read it from here."""

    RECEIVED = 0x01
    STARTED = 0x02
    COMPLETED = 0x03
    OPTED_OUT = 0x04
    OPTED_IN = 0x05
    CANCELLED = 0x06
    SUPERSEDED = 0x07
    PARTIALLY_COMPLETED_OPT_OUT = 0x08
    PARTIALLY_COMPLETED_OPT_IN = 0x09
    COMPLETED_NO_PARTICIPATION = 0x0A
    REJECTED_INVALID_OPT_OUT = 0xF6  # SE 1.2
    REJECTED_EVENT_NOT_FOUND = 0xF7  # SE 1.2
    REJECTED_INVALID_CANCEL = 0xF8
    REJECTED_INVALID_EFFECTIVE_TIME = 0xF9
    REJECTED_EXPIRED = 0xFB
    REJECTED_UNDEFINED_EVENT = 0xFD
    REJECTED = 0xFE

    @property
    def text(self) -> str:
        """The code as a person reads it: "partially completed (opt in)", "rejected: event expired"."""
        return _EVENT_STATUS_TEXT[self]


_EVENT_STATUS_TEXT = {
    EventStatus.RECEIVED: "received",
    EventStatus.STARTED: "started",
    EventStatus.COMPLETED: "completed",
    EventStatus.OPTED_OUT: "opted out",
    EventStatus.OPTED_IN: "opted in",
    EventStatus.CANCELLED: "cancelled",
    EventStatus.SUPERSEDED: "superseded",
    EventStatus.PARTIALLY_COMPLETED_OPT_OUT: "partially completed (opt out)",
    EventStatus.PARTIALLY_COMPLETED_OPT_IN: "partially completed (opt in)",
    EventStatus.COMPLETED_NO_PARTICIPATION: "completed, no participation",
    EventStatus.REJECTED_INVALID_OPT_OUT: "rejected: invalid opt out",
    EventStatus.REJECTED_EVENT_NOT_FOUND: "rejected: event not found",
    EventStatus.REJECTED_INVALID_CANCEL: "rejected: invalid cancel command (default)",
    EventStatus.REJECTED_INVALID_EFFECTIVE_TIME: "rejected: invalid effective time",
    EventStatus.REJECTED_EXPIRED: "rejected: event expired",
    EventStatus.REJECTED_UNDEFINED_EVENT: "rejected: undefined event",
    EventStatus.REJECTED: "rejected",
}

EVENT_STATUSES = frozenset(int(s) for s in EventStatus)

LOAD_CONTROL_EVENT = CommandDef(
    DRLC, S2C, 0x00, "load_control_event",
    (
        Field("issuer_event_id", uint32),
        Field("device_class", map16, min=1, mask=DEVICE_CLASS_MASK,
              limit="a non-zero bitmap of classes 0..11 (0x0001..0x0fff)"),
        Field("utility_enrollment_group", uint8, default=0, doc="0 = all groups"),
        Field("start_time", utc_time, doc="0 = now"),
        Field("duration_in_minutes", uint16,
              max=MAX_EVENT_DURATION_MINUTES),
        Field("criticality_level", uint8, min=1, max=0x0F,
              limit="1..15 (green, 1-5, emergency, planned outage, service disconnect, utility 1-6)"),
        Field("cooling_temperature_offset", uint8, sentinel=0xFF, max=0xFE, doc="0.1 °C"),
        Field("heating_temperature_offset", uint8, sentinel=0xFF, max=0xFE, doc="0.1 °C"),
        _set_point("cooling_temperature_set_point"),
        _set_point("heating_temperature_set_point"),
        Field("average_load_adjustment_percentage", int8, sentinel=-0x80, min=-100, max=100),
        Field("duty_cycle", uint8, sentinel=0xFF, max=100),
        Field("event_control", map8, default=0, mask=0x03,
              doc="bit 0 randomize start time, bit 1 randomize end time"),
    ),
)

CANCEL_LOAD_CONTROL_EVENT = CommandDef(
    DRLC, S2C, 0x01, "cancel_load_control_event",
    (
        Field("issuer_event_id", uint32),
        Field("device_class", map16, mask=DEVICE_CLASS_MASK),
        Field("utility_enrollment_group", uint8, default=0),
        Field("cancel_control", map8, default=0, mask=0x01,
              doc="bit 0 = end with the original event's randomization"),
        Field("effective_time", utc_time, doc="0 = now"),
    ),
)

CANCEL_ALL_LOAD_CONTROL_EVENTS = CommandDef(
    DRLC, S2C, 0x02, "cancel_all_load_control_events",
    (Field("cancel_control", map8, default=0, mask=0x01),),
)

REPORT_EVENT_STATUS = CommandDef(
    DRLC, C2S, 0x00, "report_event_status",
    (
        Field("issuer_event_id", uint32),
        Field("event_status", enum8, choices=EVENT_STATUSES),
        Field("event_status_time", utc_time),
        Field("criticality_level_applied", uint8),
        Field("cooling_temperature_set_point_applied", int16, sentinel=-0x8000),
        Field("heating_temperature_set_point_applied", int16, sentinel=-0x8000),
        Field("average_load_adjustment_percentage_applied", int8, sentinel=-0x80),
        Field("duty_cycle_applied", uint8, sentinel=0xFF),
        Field("event_control", map8, default=0),
        Field("signature_type", enum8, default=0, choices=frozenset({0x00, 0x01}),
              limit="0x00 (none) or 0x01 (ECDSA)"),
        # Exegin sends type 0x00 with no signature bytes at all, so a decoder may stop here;
        # an encoder leaves them off when given signature=None.
        Field("signature", FixedOctets(SIGNATURE_LENGTH), optional=True,
              default=UNSIGNED_SIGNATURE, limit="exactly 42 bytes, or None to send no signature bytes"),
    ),
)

GET_SCHEDULED_EVENTS = CommandDef(
    DRLC, C2S, 0x01, "get_scheduled_events",
    (
        Field("start_time", utc_time, doc="0 = from the beginning"),
        Field("number_of_events", uint8, doc="0 = no limit"),
        Field("issuer_event_id", uint32, since=SEVersion.V1_2, optional=True,
              sentinel=0xFFFFFFFF, max=0xFFFFFFFE, doc="minimum issuer event id"),
    ),
)

COMMANDS = (
    LOAD_CONTROL_EVENT,
    CANCEL_LOAD_CONTROL_EVENT,
    CANCEL_ALL_LOAD_CONTROL_EVENTS,
    REPORT_EVENT_STATUS,
    GET_SCHEDULED_EVENTS,
)
