"""The catalogue of SE frames checked against Wireshark and frozen as golden vectors: every command
of zigbee_se, in every SE version that has it, with several field-value sets (typical values,
"not used" sentinels, "now", minimum and maximum values, negative temperatures, empty, long and
non-ASCII UTF-8 strings).

A value set lists fields for the newest layout; fields the target version does not define are
dropped for older versions, so one set covers 1.0, 1.1 and 1.2.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zigbee_se import (
    ALL_COMMANDS,
    Direction,
    SEVersion,
    cluster_name,
    command_definitions,
    decode_frame,
    encode_frame,
    resolve_cluster,
)
from zigbee_se.schema import NibblePair
from zigbee_se.types import CharString, FixedOctets

V10, V11, V12 = SEVersion.V1_0, SEVersion.V1_1, SEVersion.V1_2
ALL_VERSIONS = (V10, V11, V12)
T = 770558400  # 2024-06-01T12:00:00Z, C0 C9 ED 2D (SE_FRAMES.md §1.5)
NOT_USED_SET_POINT = -0x8000


@dataclass(frozen=True)
class Case:
    name: str
    cluster: str
    command: str
    se_version: SEVersion
    fields: dict[str, Any]
    tsn: int = 0
    max_frame_size: int | None = 73
    """The codec's single-frame budget; None for the long-string cases that need fragmentation."""
    direction: Direction | None = None
    disable_default_response: bool = False
    manufacturer_code: int | None = None

    @property
    def cluster_id(self) -> int:
        return resolve_cluster(self.cluster)

    @property
    def id(self) -> str:
        return f"{self.cluster}-{self.command}-{self.se_version}-{self.name}"

    def encode(self) -> bytes:
        return encode_frame(
            self.cluster, self.command, self.fields, se_version=self.se_version, tsn=self.tsn,
            max_frame_size=self.max_frame_size, direction=self.direction,
            disable_default_response=self.disable_default_response,
            manufacturer_code=self.manufacturer_code,
        )


def field_names(cluster: str, command: str, version: SEVersion) -> set[str] | None:
    """Names a cluster command defines at `version` (None: not defined then)."""
    layouts = [d for d in command_definitions(cluster, command) if d.since <= version]
    if not layouts:
        return None
    names: set[str] = set()
    for item in layouts[-1].fields_for(version):
        if isinstance(item, NibblePair):
            names |= {item.high.name, item.low.name}
        else:
            names.add(item.name)
    return names


# ----------------------------------------------------------------------------- value sets

SIGNATURE = bytes(range(0x30, 0x30 + 42))
LONG_TEXT = "Load shedding tonight 17:00-21:00. Please reduce use of ovens, dryers, heat pumps " \
            "and EV charging. Thank you for helping keep the grid stable — your utility."

PRICE_SETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "publish_price": [
        ("se_frames_sample", {
            "provider_id": 1, "rate_label": "PEAK", "issuer_event_id": 256, "current_time": T,
            "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 2, "price_tier": 3,
            "number_of_price_tiers": 3, "register_tier": 3, "start_time": T,
            "duration_in_minutes": 240, "price": 2599,
        }),
        ("now_until_changed_empty_label", {
            "provider_id": 0, "rate_label": "", "issuer_event_id": 0, "current_time": 0,
            "unit_of_measure": 0, "currency": 978, "price_trailing_digit": 0, "price_tier": 0,
            "number_of_price_tiers": 0, "register_tier": 0, "start_time": 0,
            "duration_in_minutes": 0xFFFF, "price": 0, "price_ratio": 0, "generation_price": 0,
            "generation_price_ratio": 0, "alternate_cost_delivered": 0, "alternate_cost_unit": 0,
            "alternate_cost_trailing_digit": 0, "number_of_block_thresholds": 0, "price_control": 0,
        }),
        ("max_values", {
            "provider_id": 0xFFFFFFFF, "rate_label": "ABCDEFGHIJKL", "issuer_event_id": 0xFFFFFFFF,
            "current_time": 0xFFFFFFFE, "unit_of_measure": 0xFF, "currency": 0xFFFF,
            "price_trailing_digit": 15, "price_tier": 15, "number_of_price_tiers": 15,
            "register_tier": 15, "start_time": 0xFFFFFFFE, "duration_in_minutes": 0xFFFE,
            "price": 0xFFFFFFFF, "price_ratio": 0xFE, "generation_price": 0xFFFFFFFE,
            "generation_price_ratio": 0xFE, "alternate_cost_delivered": 0xFFFFFFFE,
            "alternate_cost_unit": 0xFE, "alternate_cost_trailing_digit": 0xF0,
            "number_of_block_thresholds": 15, "price_control": 3,
            "number_of_generation_tiers": 0xFF, "generation_tier": 0xFF,
            "extended_number_of_price_tiers": 0xFF, "extended_price_tier": 0xFF,
            "extended_register_tier": 0xFF,
        }),
        ("utf8_label_co2", {
            "provider_id": 42, "rate_label": "Tarif é€", "issuer_event_id": 7, "current_time": T,
            "unit_of_measure": 0x01, "currency": 978, "price_trailing_digit": 4, "price_tier": 1,
            "number_of_price_tiers": 6, "register_tier": 1, "start_time": T + 3600,
            "duration_in_minutes": 30, "price": 123456, "price_ratio": 10,
            "generation_price": 5000, "generation_price_ratio": 20,
            "alternate_cost_delivered": 450, "alternate_cost_unit": 0x01,
            "alternate_cost_trailing_digit": 0x30, "number_of_block_thresholds": 2,
            "price_control": 1, "number_of_generation_tiers": 2, "generation_tier": 1,
            "extended_number_of_price_tiers": 3, "extended_price_tier": 4,
            "extended_register_tier": 5,
        }),
    ],
    "publish_block_period": [
        ("typical", {
            "provider_id": 1, "issuer_event_id": 9, "block_period_start_time": T,
            "block_period_duration": 1440, "number_of_price_tiers": 3,
            "number_of_block_thresholds": 2, "block_period_control": 1,
            "block_period_duration_type": 0x00, "tariff_type": 0, "tariff_resolution_period": 0,
        }),
        ("now_max", {
            "provider_id": 0xFFFFFFFF, "issuer_event_id": 0xFFFFFFFF, "block_period_start_time": 0,
            "block_period_duration": 0xFFFFFF, "number_of_price_tiers": 15,
            "number_of_block_thresholds": 15, "block_period_control": 3,
            "block_period_duration_type": 0x23, "tariff_type": 2, "tariff_resolution_period": 0xFF,
        }),
    ],
    "get_current_price": [("rx_off", {"command_options": 0}), ("rx_on", {"command_options": 1})],
    "get_scheduled_prices": [
        ("from_beginning_all", {"start_time": 0, "number_of_events": 0}),
        ("from_t_max", {"start_time": T, "number_of_events": 255}),
        ("invalid_time", {"start_time": 0xFFFFFFFF, "number_of_events": 1}),
    ],
    "price_acknowledgement": [
        ("typical", {"provider_id": 1, "issuer_event_id": 256, "price_ack_time": T, "control": 1}),
        ("max", {"provider_id": 0xFFFFFFFF, "issuer_event_id": 0xFFFFFFFF,
                 "price_ack_time": 0xFFFFFFFF, "control": 0xFF}),
    ],
    "get_block_periods": [
        ("typical", {"start_time": T, "number_of_events": 3, "tariff_type": 0}),
        ("max", {"start_time": 0xFFFFFFFF, "number_of_events": 255, "tariff_type": 0x0F}),
    ],
}

DRLC_SETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "load_control_event": [
        ("typical_now", {
            "issuer_event_id": 0x1234, "device_class": 0x0004, "utility_enrollment_group": 0,
            "start_time": 0, "duration_in_minutes": 60, "criticality_level": 2,
            "cooling_temperature_offset": 20, "heating_temperature_offset": 20,
            "cooling_temperature_set_point": 2500, "heating_temperature_set_point": 1800,
            "average_load_adjustment_percentage": 10, "duty_cycle": 50, "event_control": 3,
        }),
        ("negative_set_points_and_adjustment", {
            "issuer_event_id": 2, "device_class": 0x0003, "utility_enrollment_group": 5,
            "start_time": T, "duration_in_minutes": 120, "criticality_level": 4,
            "cooling_temperature_set_point": -500, "heating_temperature_set_point": -27315,
            "average_load_adjustment_percentage": -100,
        }),
        ("all_not_used_on_off", {
            "issuer_event_id": 3, "device_class": 0x0080, "start_time": T,
            "duration_in_minutes": 15, "criticality_level": 7,
        }),
        ("max_values", {
            "issuer_event_id": 0xFFFFFFFF, "device_class": 0x0FFF, "utility_enrollment_group": 255,
            "start_time": 0xFFFFFFFE, "duration_in_minutes": 1440, "criticality_level": 15,
            "cooling_temperature_offset": 0xFE, "heating_temperature_offset": 0xFE,
            "cooling_temperature_set_point": 0x7FFF, "heating_temperature_set_point": 0x7FFF,
            "average_load_adjustment_percentage": 100, "duty_cycle": 100, "event_control": 3,
        }),
        ("min_values", {
            "issuer_event_id": 0, "device_class": 0x0001, "utility_enrollment_group": 0,
            "start_time": 1, "duration_in_minutes": 0, "criticality_level": 1,
            "cooling_temperature_offset": 0, "heating_temperature_offset": 0,
            "cooling_temperature_set_point": 0, "heating_temperature_set_point": 0,
            "average_load_adjustment_percentage": 0, "duty_cycle": 0, "event_control": 0,
        }),
    ],
    "cancel_load_control_event": [
        ("now", {"issuer_event_id": 0x1234, "device_class": 0x0004, "utility_enrollment_group": 0,
                 "cancel_control": 0, "effective_time": 0}),
        ("at_time_randomized", {"issuer_event_id": 7, "device_class": 0x0FFF,
                                "utility_enrollment_group": 3, "cancel_control": 1,
                                "effective_time": T}),
        ("max", {"issuer_event_id": 0xFFFFFFFF, "device_class": 0x0FFF,
                 "utility_enrollment_group": 255, "cancel_control": 1, "effective_time": 0xFFFFFFFF}),
    ],
    "cancel_all_load_control_events": [
        ("immediately", {"cancel_control": 0}), ("randomized", {"cancel_control": 1}),
    ],
    "report_event_status": [
        ("received_unsigned", {
            "issuer_event_id": 0x1234, "event_status": 0x01, "event_status_time": T,
            "criticality_level_applied": 2,
        }),
        ("started_applied_values", {
            "issuer_event_id": 0x1234, "event_status": 0x02, "event_status_time": T + 60,
            "criticality_level_applied": 2, "cooling_temperature_set_point_applied": 2500,
            "heating_temperature_set_point_applied": 1800,
            "average_load_adjustment_percentage_applied": 10, "duty_cycle_applied": 50,
            "event_control": 3, "signature_type": 1, "signature": SIGNATURE,
        }),
        ("negative_applied", {
            "issuer_event_id": 9, "event_status": 0x04, "event_status_time": T,
            "criticality_level_applied": 3, "cooling_temperature_set_point_applied": -100,
            "heating_temperature_set_point_applied": -27315,
            "average_load_adjustment_percentage_applied": -50, "duty_cycle_applied": 0,
            "signature": bytes(42),
        }),
        ("invalid_opt_out_f6", {"issuer_event_id": 1, "event_status": 0xF6,
                                "event_status_time": T, "criticality_level_applied": 1}),
        ("event_not_found_f7", {"issuer_event_id": 0xFFFFFFFF, "event_status": 0xF7,
                                "event_status_time": 0xFFFFFFFF, "criticality_level_applied": 15}),
        ("rejected_fe", {"issuer_event_id": 5, "event_status": 0xFE, "event_status_time": 0,
                         "criticality_level_applied": 0}),
    ],
    "get_scheduled_events": [
        ("all", {"start_time": 0, "number_of_events": 0}),
        ("from_issuer_id", {"start_time": T, "number_of_events": 10, "issuer_event_id": 0x12345678}),
        ("small_issuer_id", {"start_time": 1, "number_of_events": 255, "issuer_event_id": 5}),
    ],
}

_MSG_BASE = {"message_id": 0x12345678, "message_control": 0x80, "start_time": 0,
             "duration_in_minutes": 60}
MESSAGING_SETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "display_message": [
        ("se_frames_example", {**_MSG_BASE, "message": "Peak pricing 2-6pm"}),
        ("utf8_until_changed", {
            "message_id": 1, "message_control": 0x0D, "start_time": T,
            "duration_in_minutes": 0xFFFF, "message": "Strøm: 2,50 kr/kWh — spar nå! ⚡",
            "extended_message_control": 1,
        }),
        ("empty_critical_enhanced", {
            "message_id": 0xFFFFFFFF, "message_control": 0xAF, "start_time": 0xFFFFFFFF,
            "duration_in_minutes": 0, "message": "", "extended_message_control": 0,
        }),
    ],
    "cancel_message": [
        ("control_zero", {"message_id": 7, "message_control": 0}),
        ("max_id", {"message_id": 0xFFFFFFFF, "message_control": 0}),
        ("legacy_control", {"message_id": 0x12345678, "message_control": 0x80}),
    ],
    "display_protected_message": [
        ("typical", {**_MSG_BASE, "message": "PIN 4711 to confirm", "extended_message_control": 0}),
        ("utf8", {**_MSG_BASE, "message_control": 0xA5, "message": "Ændring i tariff: 13–17 ✓"}),
    ],
    "cancel_all_messages": [("now", {"implementation_date_time": 0}),
                            ("at_time", {"implementation_date_time": T})],
    "get_last_message": [("no_payload", {})],
    "message_confirmation": [
        ("plain", {"message_id": 0x12345678, "confirmation_time": T}),
        ("no_answer", {"message_id": 1, "confirmation_time": T, "message_confirmation_control": 1,
                       "message_response": "NO"}),
        ("yes_bit", {"message_id": 2, "confirmation_time": 0xFFFFFFFF,
                     "message_confirmation_control": 2, "message_response": "Ja, takk ✓"}),
        ("empty_response", {"message_id": 0xFFFFFFFF, "confirmation_time": 0,
                            "message_confirmation_control": 0, "message_response": ""}),
    ],
    "get_message_cancellation": [("from_beginning", {"earliest_implementation_time": 0}),
                                 ("from_t", {"earliest_implementation_time": T})],
}

# The long-string cases need more than one 802.15.4 frame (the codec's budget is off for them).
LONG_CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("messaging", "display_message", "long_text_fragmented",
     {**_MSG_BASE, "message": LONG_TEXT, "extended_message_control": 0}),
    ("messaging", "message_confirmation", "long_response",
     {"message_id": 3, "confirmation_time": T, "message_confirmation_control": 1,
      "message_response": "X" * 200}),
    ("messaging", "display_message", "max_254_bytes",
     {**_MSG_BASE, "message": "€" * 84 + "ab", "extended_message_control": 0}),
]

METERING_ATTRS = [0x0000, 0x0001, 0x0200, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0305, 0x0306,
                  0x0400]
TIME_ATTRS = list(range(10))

GLOBAL_SETS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("metering", "read_attributes", "all_named", {"attribute_ids": METERING_ATTRS}),
    ("metering", "read_attributes", "one", {"attribute_ids": [0x0000]}),
    ("time", "read_attributes", "all", {"attribute_ids": TIME_ATTRS}),
    ("metering", "read_attributes_response", "all_named", {"records": [
        {"attribute_id": 0x0000, "status": 0, "value": 0xFFFFFFFFFFFF},
        {"attribute_id": 0x0001, "status": 0, "value": 0},
        {"attribute_id": 0x0200, "status": 0, "value": 0x03},
        {"attribute_id": 0x0300, "status": 0, "value": 0x00},
        {"attribute_id": 0x0301, "status": 0, "value": 1},
        {"attribute_id": 0x0302, "status": 0, "value": 0xFFFFFF},
        {"attribute_id": 0x0303, "status": 0, "value": 0xFB},
        {"attribute_id": 0x0304, "status": 0, "value": 0x00},
        {"attribute_id": 0x0305, "status": 0, "value": 0x2A},
        {"attribute_id": 0x0306, "status": 0, "value": 0x00},
        {"attribute_id": 0x0400, "status": 0, "value": -8388608},
    ]}),
    ("metering", "read_attributes_response", "demand_and_unsupported", {"records": [
        {"attribute_id": 0x0400, "status": 0, "value": 8388607},
        {"attribute_id": 0x0000, "status": 0, "value": 123456789012},
        {"attribute_id": 0x0305, "status": 0x86},
    ]}),
    ("time", "read_attributes_response", "all", {"records": [
        {"attribute_id": 0x0000, "status": 0, "value": T},
        {"attribute_id": 0x0001, "status": 0, "value": 0x0B},
        {"attribute_id": 0x0002, "status": 0, "value": 3600},
        {"attribute_id": 0x0003, "status": 0, "value": T - 86400 * 60},
        {"attribute_id": 0x0004, "status": 0, "value": T + 86400 * 150},
        {"attribute_id": 0x0005, "status": 0, "value": -3600},
        {"attribute_id": 0x0006, "status": 0, "value": T + 3600},
        {"attribute_id": 0x0007, "status": 0, "value": 0xFFFFFFFF},
        {"attribute_id": 0x0008, "status": 0, "value": 0},
        {"attribute_id": 0x0009, "status": 0, "value": 0xFFFFFFFF},
    ]}),
    ("metering", "read_attributes_response", "zigpy_typed_octet_strings", {"records": [
        {"attribute_id": 0x0307, "status": 0, "value": b"SITE-0042"},
        {"attribute_id": 0x0308, "status": 0, "value": bytes([0x00, 0x7F, 0x80, 0xFF])},
        {"attribute_id": 0x0100, "status": 0, "value": 0x0000FFFFFFFF},
        {"attribute_id": 0x0600, "status": 0, "value": 0xABCDEF},
        {"attribute_id": 0x0800, "status": 0, "value": 0x8001},
    ]}),
    ("metering", "report_attributes", "summation_and_demand", {"records": [
        {"attribute_id": 0x0000, "value": 987654321},
        {"attribute_id": 0x0400, "value": -1500},
    ]}),
    ("time", "report_attributes", "time_and_status", {"records": [
        {"attribute_id": 0x0000, "value": T},
        {"attribute_id": 0x0001, "value": 0x03},
        {"attribute_id": 0x0002, "value": -18000},
    ]}),
    ("metering", "default_response", "success", {"command_id": 0x00, "status": 0x00}),
    ("time", "default_response", "unsupported", {"command_id": 0x0A, "status": 0x81}),
]

CLUSTER_SETS = {"price": PRICE_SETS, "drlc": DRLC_SETS, "messaging": MESSAGING_SETS}


def _trim(cluster: str, command: str, version: SEVersion, values: dict[str, Any]) -> dict[str, Any]:
    names = field_names(cluster, command, version)
    assert names is not None
    return {k: v for k, v in values.items() if k in names}


def all_cases() -> list[Case]:
    cases: list[Case] = []
    tsn = 0

    def add(**kw: Any) -> None:
        nonlocal tsn
        cases.append(Case(tsn=tsn, **kw))
        tsn = (tsn + 1) % 256

    for cluster, sets in CLUSTER_SETS.items():
        for command, value_sets in sets.items():
            for version in ALL_VERSIONS:
                if field_names(cluster, command, version) is None:
                    continue
                for name, values in value_sets:
                    add(name=name, cluster=cluster, command=command, se_version=version,
                        fields=_trim(cluster, command, version, values))
    for cluster, command, name, values in LONG_CASES:
        for version in ALL_VERSIONS:
            add(name=name, cluster=cluster, command=command, se_version=version,
                fields=_trim(cluster, command, version, values), max_frame_size=None)
    for cluster, command, name, values in GLOBAL_SETS:
        for version in ALL_VERSIONS:
            # attribute lists may exceed one frame's budget; a real meter splits them, the codec
            # does not have to
            add(name=name, cluster=cluster, command=command, se_version=version, fields=values,
                max_frame_size=None)
    # Default Response goes both ways; and one frame with "disable default response" set.
    add(name="to_client", cluster="drlc", command="default_response", se_version=V11,
        fields={"command_id": 0x00, "status": 0x00}, direction=Direction.SERVER_TO_CLIENT)
    add(name="disable_default_response", cluster="messaging", command="display_message",
        se_version=V11, fields={**_MSG_BASE, "message": "No reply needed"},
        disable_default_response=True)
    # the ESI reads and the device reports the DRLC and Price CLIENT attributes (SE_FRAMES.md §3.7,
    # §2.5): the other direction, the other attribute table
    s2c, c2s = Direction.SERVER_TO_CLIENT, Direction.CLIENT_TO_SERVER
    add(name="client_attributes", cluster="drlc", command="read_attributes", se_version=V11,
        fields={"attribute_ids": [0, 1, 2, 3]}, direction=s2c)
    add(name="client_attributes", cluster="drlc", command="read_attributes_response",
        se_version=V11, direction=c2s, fields={"records": [
            {"attribute_id": 0, "status": 0, "value": 5},
            {"attribute_id": 1, "status": 0, "value": 0x1E},
            {"attribute_id": 2, "status": 0, "value": 0x3C},
            {"attribute_id": 3, "status": 0, "value": 0x0FFF}]})
    add(name="client_attributes", cluster="drlc", command="report_attributes", se_version=V12,
        direction=c2s, fields={"records": [{"attribute_id": 1, "value": 30}]})
    add(name="client_attributes", cluster="price", command="read_attributes_response",
        se_version=V11, direction=c2s, fields={"records": [
            {"attribute_id": 0, "status": 0, "value": 5},
            {"attribute_id": 1, "status": 0, "value": 0},
            {"attribute_id": 2, "status": 0, "value": 1}]})
    # a manufacturer-specific attribute read (the 5-byte ZCL header)
    add(name="manufacturer_specific", cluster="metering", command="read_attributes",
        se_version=V11, fields={"attribute_ids": [0x0000, 0x4001]}, manufacturer_code=0x1037)
    return cases


def cases_by_command() -> Iterator[tuple[str, str, SEVersion]]:
    for case in all_cases():
        yield case.cluster, case.command, case.se_version


# ----------------------------------------------------------------------------- frames from others

@dataclass(frozen=True)
class ForeignFrame:
    """A frame another sender may send that our encoder never produces (a shorter optional tail,
    an invalid 0xff string): checks our DECODER against Wireshark's."""

    id: str
    cluster: str
    command: str
    se_version: SEVersion
    frame: bytes

    @property
    def cluster_id(self) -> int:
        return resolve_cluster(self.cluster)


def _item_size(item: Any, fields: dict[str, Any]) -> int:
    if isinstance(item, NibblePair):
        return 1
    value = fields[item.name]
    if isinstance(value, str):
        return 1 + len(value.encode("utf-8"))
    if isinstance(value, bytes):
        return len(value)
    return int(item.type.size)


def foreign_frames() -> list[ForeignFrame]:
    """Every command's newest frame (with every optional field), cut after each optional field;
    and frames whose strings carry the 'invalid' length 0xff."""
    out: list[ForeignFrame] = []
    seen: set[tuple[str, str]] = set()
    for case in all_cases():
        if case.se_version != V12 or case.command not in CLUSTER_SETS.get(case.cluster, {}):
            continue
        if (case.cluster, case.command) in seen or case.max_frame_size is None:
            continue
        seen.add((case.cluster, case.command))
        frame = case.encode()
        definition = command_definitions(case.cluster, case.command)[-1]
        fields = decode_frame(case.cluster, frame, se_version=V12).fields
        end = len(frame)
        for item in reversed(definition.fields_for(V12)):
            if not item.optional:
                break
            end -= _item_size(item, fields)
            out.append(ForeignFrame(f"{case.cluster}-{case.command}-cut-before-{item.name}",
                                    case.cluster, case.command, V12, frame[:end]))
    # invalid strings (length 0xff, no content): Rate Label, Message
    price = bytes.fromhex("09200001000000ff00010000c0c9ed2d0048032333c0c9ed2df000270a0000")
    out.append(ForeignFrame("price-publish_price-invalid-rate-label", "price", "publish_price",
                            V10, price))
    message = bytes.fromhex("0901007856341280000000003c00ff")
    out.append(ForeignFrame("messaging-display_message-invalid-message", "messaging",
                            "display_message", V10, message))
    # values our encoder refuses (reserved bits, undefined enums, out-of-range numbers) but a
    # device may send: the decoder must give the raw wire values, as Wireshark shows them
    for name, cluster, command, hexed in OUT_OF_RANGE:
        out.append(ForeignFrame(f"{cluster}-{command}-{name}", cluster, command, V12,
                                bytes.fromhex(hexed)))
    return out


OUT_OF_RANGE = [
    ("reserved-fc-bits", "messaging", "display_message", "e901007856341280000000003c00024869"),
    ("reserved-message-control-bits", "messaging", "display_message",
     "0901007856341250000000003c00024869"),
    ("reserved-device-class-criticality-0-long-duration", "drlc", "load_control_event",
     "09080001000000fff00000000000ffff0014ff0cfed007f63203"),
    ("adjustment-minus-56-duty-200-event-control-ff", "drlc", "load_control_event",
     "09080001000000ff0f0000000000a0050714ff0cfed007c8c8ff"),
    ("undefined-status-0x0b", "drlc", "report_event_status",
     "010b00010000000bc0c9ed2d039cff008080ff0100"),
    ("signature-type-2", "drlc", "report_event_status", "010b000100000001c0c9ed2d039cff008080ff0102"),
    ("cancel-control-ff", "drlc", "cancel_all_load_control_events", "090a02ff"),
    ("block-thresholds-32-control-ff", "price", "publish_price",
     "09000001000000045045414b0001000000000000004803233300000000f000270a0000ffffffffffffffffffffffff20ff"),
    ("rate-label-13-chars", "price", "publish_price",
     "090000010000000d4142434445464748494a4b4c4d0001000000000000004803233300000000f000270a0000"),
    ("duration-type-ff", "price", "publish_block_period",
     "09020101000000020000000300000004000003ff0207"),
]


# ----------------------------------------------------------------------------- seeded random values

_TEXT_ALPHABET = "abcXYZ 0123456789-:,.!?æøåÆØÅéü€✓⚡中"


def _random_value(rng: random.Random, f: Any) -> Any:
    t = f.type
    if isinstance(t, CharString):
        text = "".join(rng.choice(_TEXT_ALPHABET) for _ in range(rng.randint(0, 40)))
        while len(text.encode("utf-8")) > t.max_length:
            text = text[:-1]
        return text
    if isinstance(t, FixedOctets):
        return rng.randbytes(t.size)
    if f.sentinel is not None and rng.random() < 0.2:
        return f.sentinel
    if f.choices is not None:
        return rng.choice(sorted(f.choices))
    lo, hi = f.bounds()
    for _ in range(100):
        value = rng.choice((lo, hi, rng.randint(lo, hi), rng.randint(lo, hi)))
        if f.mask is not None:
            value &= f.mask
        if lo <= value <= hi:
            return value
    return lo


def random_cases(per_command: int = 6, seed: int = 20240601) -> list[Case]:
    """Seeded random field values within each field's limits, for every command and version."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for definition in ALL_COMMANDS:
        cluster = cluster_name(definition.cluster)
        for version in ALL_VERSIONS:
            if version < definition.since:
                continue
            # the newest layout at this version (PublishBlockPeriod has two)
            newest = command_definitions(cluster, definition.name)
            if [d for d in newest if d.since <= version][-1] is not definition:
                continue
            for i in range(per_command):
                values: dict[str, Any] = {}
                for item in definition.fields_for(version):
                    parts = (item.high, item.low) if isinstance(item, NibblePair) else (item,)
                    for part in parts:
                        values[part.name] = _random_value(rng, part)
                cases.append(Case(name=f"random{i}", cluster=cluster, command=definition.name,
                                  se_version=version, fields=values, tsn=rng.randint(0, 255),
                                  max_frame_size=None))
    return cases
