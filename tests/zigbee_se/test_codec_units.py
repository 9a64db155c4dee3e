"""The codec against the byte-exact examples of SE_FRAMES.md, and every limit the issue names."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

import zigbee_se
from zigbee_se import DecodeError, Direction, EncodeError, SEVersion

DISPLAY = {
    "message_id": 0x12345678, "message_control": 0x80, "start_time": 0,
    "duration_in_minutes": 60, "message": "Peak pricing 2-6pm",
}
LCE = {
    "issuer_event_id": 1, "device_class": 0x0FFF, "start_time": 0, "duration_in_minutes": 60,
    "criticality_level": 3,
}
PRICE = {
    "provider_id": 1, "rate_label": "PEAK", "issuer_event_id": 0x100, "current_time": 770558400,
    "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 2, "price_tier": 3,
    "number_of_price_tiers": 3, "register_tier": 3, "start_time": 770558400,
    "duration_in_minutes": 240, "price": 2599,
}


def test_display_message_matches_the_brief_example() -> None:
    frame = zigbee_se.encode_frame("messaging", "display_message", DISPLAY, tsn=1)
    assert frame.hex() == "0901007856341280000000003c00125065616b2070726963696e6720322d36706d"
    decoded = zigbee_se.decode_frame("messaging", frame)
    assert decoded.command == "display_message"
    assert decoded.direction is Direction.SERVER_TO_CLIENT
    assert decoded.fields == DISPLAY


def test_publish_price_matches_the_tshark_checked_sample() -> None:
    frame = zigbee_se.encode_frame("price", "publish_price", PRICE, tsn=0x20, se_version="1.1")
    assert frame == bytes.fromhex(
        "092000" "01000000" "04" + b"PEAK".hex() + "00010000" "C0C9ED2D" "00" "4803" "23" "33" "C0C9ED2D" "F000"
        "270A0000" "FF" "FFFFFFFF" "FF" "FFFFFFFF" "FF" "FF" "00" "00"
    )


@pytest.mark.parametrize(("version", "size"), [("1.0", 28 + 4 + 12), ("1.1", 42 + 4), ("1.2", 47 + 4)])
def test_publish_price_length_per_version(version: str, size: int) -> None:
    payload = zigbee_se.encode_payload("price", "publish_price", PRICE, se_version=version)
    # SE 1.0: mandatory 28+L plus the three optional price/generation fields this codec sends.
    assert len(payload) == (size if version != "1.0" else 28 + 4 + 6)


def test_load_control_event_is_23_bytes_with_sentinels_for_unused_controls() -> None:
    payload = zigbee_se.encode_payload("drlc", "load_control_event", LCE)
    assert len(payload) == 23
    # offsets 0xff, set points 0x8000, load adjustment 0x80, duty cycle 0xff, event control 0
    assert payload[14:] == bytes.fromhex("ffff" "0080" "0080" "80" "ff" "00")


def test_report_event_status_has_a_42_byte_signature_without_length_prefix() -> None:
    fields = {"issuer_event_id": 7, "event_status": 0x02, "event_status_time": 5, "criticality_level_applied": 3}
    payload = zigbee_se.encode_payload("drlc", "report_event_status", fields)
    assert len(payload) == 60
    assert payload[17] == 0x00 and payload[18:] == b"\xff" * 42
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_payload("drlc", "report_event_status", {**fields, "signature": b"\x00" * 41})
    assert info.value.field == "signature"
    # Exegin sends type 0x00 with no signature at all (18 bytes): decoded, signature absent.
    exegin = bytes.fromhex("010000") + payload[:18]
    assert "signature" not in zigbee_se.decode_frame("drlc", exegin).fields


def test_message_confirmation_is_client_to_server_0x01() -> None:
    frame = zigbee_se.encode_frame(
        "messaging", "message_confirmation", {"message_id": 9, "confirmation_time": 100}, se_version="1.1"
    )
    assert frame[:3] == bytes((0x01, 0x00, 0x01))
    assert zigbee_se.decode_frame("messaging", bytes((0x01, 0x05, 0x00))).command == "get_last_message"


@pytest.mark.parametrize(
    ("cluster", "command", "fields", "field", "limit_part"),
    [
        ("drlc", "load_control_event", {**LCE, "duration_in_minutes": 1441}, "duration_in_minutes", "0..1440"),
        ("drlc", "load_control_event", {**LCE, "average_load_adjustment_percentage": 101},
         "average_load_adjustment_percentage", "-100..100"),
        ("drlc", "load_control_event", {**LCE, "average_load_adjustment_percentage": -101},
         "average_load_adjustment_percentage", "-128 (not used)"),
        ("drlc", "load_control_event", {**LCE, "duty_cycle": 101}, "duty_cycle", "0..100"),
        ("drlc", "load_control_event", {**LCE, "device_class": 0x1000}, "device_class", "0x0fff"),
        ("drlc", "load_control_event", {**LCE, "criticality_level": 0}, "criticality_level", "1..15"),
        ("drlc", "load_control_event", {**LCE, "cooling_temperature_set_point": -27316},
         "cooling_temperature_set_point", "absolute zero"),
        ("drlc", "load_control_event", {**LCE, "event_control": 4}, "event_control", "bits 0x3"),
        ("drlc", "load_control_event", {**LCE, "issuer_event_id": 2**32}, "issuer_event_id", "0..4294967295"),
        ("drlc", "load_control_event", {**LCE, "start_time": 1.5}, "start_time", "an integer"),
        ("price", "publish_price", {**PRICE, "rate_label": "THIRTEEN CHRS"}, "rate_label", "at most 12 bytes"),
        ("price", "publish_price", {**PRICE, "price_tier": 16}, "price_tier", "0..15"),
        ("messaging", "display_message", {**DISPLAY, "message_control": 0x10}, "message_control", "bits 0xaf"),
        ("messaging", "display_message", {**DISPLAY, "message": "\ud800"}, "message", "UTF-8"),
        ("drlc", "report_event_status",
         {"issuer_event_id": 1, "event_status": 0x42, "event_status_time": 0, "criticality_level_applied": 1},
         "event_status", "one of"),
    ],
)
def test_out_of_range_values_name_field_value_and_limit(
    cluster: str, command: str, fields: dict[str, object], field: str, limit_part: str
) -> None:
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame(cluster, command, fields)
    assert info.value.field == field
    assert info.value.value == fields[field]
    assert limit_part in info.value.limit


def test_sentinels_are_accepted_where_the_range_is_narrower() -> None:
    fields = {**LCE, "average_load_adjustment_percentage": -128, "duty_cycle": 0xFF,
              "cooling_temperature_set_point": -32768, "cooling_temperature_offset": 0xFF}
    assert zigbee_se.decode_frame("drlc", zigbee_se.encode_frame("drlc", "load_control_event", fields)).fields[
        "average_load_adjustment_percentage"] == -128


def test_text_over_the_single_frame_budget_says_by_how_much() -> None:
    budget_text = zigbee_se.max_text_bytes(se_version="1.2")
    assert budget_text == 57  # 73 - 3 header - 11 fixed - 1 length - 1 extended control
    ok = {**DISPLAY, "message": "x" * budget_text}
    assert len(zigbee_se.encode_frame("messaging", "display_message", ok, se_version="1.2")) == 73
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("messaging", "display_message", {**DISPLAY, "message": "é" * 30}, se_version="1.2")
    assert info.value.field == "message"
    assert "60 bytes, 3 too many" in info.value.limit
    # A route whose meters fragment (80-character modules) passes its own budget.
    long_text = {**DISPLAY, "message": "y" * 80}
    assert zigbee_se.encode_frame("messaging", "display_message", long_text, max_frame_size=None)[14] == 80


def test_missing_unknown_and_later_version_fields() -> None:
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("drlc", "load_control_event", {k: v for k, v in LCE.items() if k != "start_time"})
    assert info.value.field == "start_time" and "required" in info.value.limit
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("drlc", "load_control_event", {**LCE, "colour": 1})
    assert info.value.field == "colour"
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("messaging", "display_message", {**DISPLAY, "extended_message_control": 1},
                               se_version="1.1")
    assert info.value.field == "extended_message_control" and "SE 1.2" in info.value.limit
    # At its "not used" value a later field changes nothing and is left out.
    same = zigbee_se.encode_frame("messaging", "display_message", {**DISPLAY, "extended_message_control": 0},
                                  se_version="1.1")
    assert same == zigbee_se.encode_frame("messaging", "display_message", DISPLAY, se_version="1.1")


def test_commands_newer_than_the_target_version_are_refused() -> None:
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("price", "price_acknowledgement",
                               {"provider_id": 1, "issuer_event_id": 2, "price_ack_time": 3, "control": 1},
                               se_version="1.0")
    assert info.value.field == "se_version" and "SE 1.1" in info.value.limit
    with pytest.raises(EncodeError):
        zigbee_se.encode_frame("messaging", "cancel_all_messages", {"implementation_date_time": 0}, se_version="1.1")
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("messaging", "display_message", DISPLAY, se_version="2.0")
    assert info.value.field == "se_version"
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("messaging", "publish_price", DISPLAY)
    assert info.value.field == "command"


def test_publish_block_period_has_two_layouts() -> None:
    v11 = {"provider_id": 1, "issuer_event_id": 2, "block_period_start_time": 0, "block_period_duration": 1440,
           "number_of_price_tiers": 3, "number_of_block_thresholds": 2, "block_period_control": 1}
    v12 = {"provider_id": 1, "issuer_event_id": 2, "block_period_start_time": 0, "block_period_duration": 1,
           "block_period_control": 1, "block_period_duration_type": 0x01, "tariff_type": 0,
           "tariff_resolution_period": 0}
    old = zigbee_se.encode_frame("price", "publish_block_period", v11, se_version="1.1")
    new = zigbee_se.encode_frame("price", "publish_block_period", v12, se_version="1.2")
    assert len(old) - 3 == 17 and len(new) - 3 == 19
    assert old[3 + 12 : 3 + 15] == (1440).to_bytes(3, "little") and old[-2] == 0x32
    assert zigbee_se.decode_frame("price", old).fields == v11
    assert zigbee_se.decode_frame("price", new).fields == v12
    assert zigbee_se.decode_frame("price", old, se_version="1.1").fields == v11
    with pytest.raises(EncodeError):
        zigbee_se.encode_frame("price", "publish_block_period", v11, se_version="1.0")


def test_get_scheduled_events_issuer_event_id_is_se_1_2_only() -> None:
    fields = {"start_time": 0, "number_of_events": 0}
    assert len(zigbee_se.encode_payload("drlc", "get_scheduled_events", fields, se_version="1.1")) == 5
    payload = zigbee_se.encode_payload("drlc", "get_scheduled_events", fields, se_version="1.2")
    assert payload[5:] == b"\xff\xff\xff\xff"


def test_header_variants() -> None:
    with pytest.raises(EncodeError) as info:  # it would make the command id the manufacturer's own
        zigbee_se.encode_frame("messaging", "cancel_message", {"message_id": 1}, manufacturer_code=0x1002)
    assert info.value.field == "manufacturer_code"
    read = zigbee_se.encode_frame("metering", "read_attributes", {"attribute_ids": [0]}, tsn=255,
                                  disable_default_response=True, manufacturer_code=0x1002)
    assert read == bytes((0x14, 0x02, 0x10, 0xFF, 0x00, 0x00, 0x00))
    assert zigbee_se.decode_frame("metering", read).manufacturer_code == 0x1002
    proprietary = bytes((0x0D, 0x02, 0x10, 0x05, 0x01, 0x07, 0, 0, 0, 0))
    with pytest.raises(DecodeError) as derr:  # a manufacturer-specific cluster command is not ours
        zigbee_se.decode_frame("messaging", proprietary)
    assert "manufacturer" in derr.value.reason
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("messaging", "cancel_message", {"message_id": 1}, tsn=256)
    assert info.value.field == "tsn"
    ddr = zigbee_se.encode_frame("messaging", "cancel_message", {"message_id": 1}, disable_default_response=True)
    decoded = zigbee_se.decode_frame("messaging", ddr)
    assert ddr[0] == 0x19 and decoded.disable_default_response


def test_decode_errors_carry_offset_and_reason() -> None:
    with pytest.raises(DecodeError) as info:
        zigbee_se.decode_frame("drlc", bytes.fromhex("0900000100000000"))
    assert info.value.offset == 7 and "device_class" in info.value.reason
    with pytest.raises(DecodeError) as info:
        zigbee_se.decode_frame("drlc", bytes.fromhex("09000f"))
    assert "not known" in info.value.reason
    bad_utf8 = bytes.fromhex("090100" "01000000" "00" "00000000" "0100" "02" "c328")
    with pytest.raises(DecodeError) as info:
        zigbee_se.decode_frame("messaging", bad_utf8)
    assert info.value.offset == 15 and "UTF-8" in info.value.reason
    with pytest.raises(DecodeError):
        zigbee_se.decode_frame("messaging", "not bytes")  # type: ignore[arg-type]


def test_invalid_string_length_0xff_decodes_as_none_and_encodes_back() -> None:
    frame = zigbee_se.encode_frame("messaging", "display_message", {**DISPLAY, "message": None})
    assert frame[14] == 0xFF
    assert zigbee_se.decode_frame("messaging", frame).fields["message"] is None


def test_attribute_non_values_encode_as_the_decoder_gives_them() -> None:
    # None is what the decoder gives for a string of length all-ones and for NaN: it encodes back.
    records = [{"attribute_id": 0x5000 + i, "data_type": t, "value": None}
               for i, t in enumerate((0x38, 0x39, 0x3A, 0x41, 0x42, 0x43, 0x44))]
    frame = zigbee_se.encode_frame("metering", "report_attributes", {"records": records})
    assert frame[3:].hex() == ("005038007e" "015039" "0000c07f" "02503a" "000000000000f87f"
                               "035041ff" "045042ff" "055043ffff" "065044ffff")
    assert [r["value"] for r in zigbee_se.decode_frame("metering", frame).fields["records"]] == [None] * 7
    with pytest.raises(EncodeError):  # a fixed-size type has no such value
        zigbee_se.encode_frame("metering", "report_attributes",
                               {"records": [{"attribute_id": 0x5000, "data_type": 0xF0, "value": None}]})


def test_global_commands_with_typed_metering_and_time_attributes() -> None:
    read = zigbee_se.encode_frame("metering", "read_attributes",
                                  {"attribute_ids": ["current_summation_delivered", 0x0400]})
    assert read == bytes.fromhex("000000" "0000" "0004")
    response = zigbee_se.encode_frame("metering", "read_attributes_response", {"records": [
        {"attribute_id": 0x0000, "value": 2**48 - 2},
        {"attribute_id": "instantaneous_demand", "value": -1500},
        {"attribute_id": 0x0301, "value": 1},
        {"attribute_id": 0x7777, "status": 0x86},
    ]}, tsn=9)
    assert response[0] == 0x08  # global, server->client
    decoded = zigbee_se.decode_frame("metering", response)
    assert decoded.command == "read_attributes_response"
    records = decoded.fields["records"]
    assert records[0] == {"attribute_id": 0, "status": 0, "data_type": 0x25, "value": 2**48 - 2,
                          "name": "current_summation_delivered"}
    assert records[1]["data_type"] == 0x2A and records[1]["value"] == -1500
    assert records[3] == {"attribute_id": 0x7777, "status": 0x86}
    report = zigbee_se.encode_frame("time", "report_attributes",
                                    {"records": [{"attribute_id": "time", "value": 770558400}]})
    assert zigbee_se.decode_frame("time", report).fields["records"][0]["name"] == "time"
    default = zigbee_se.encode_frame("drlc", "default_response", {"command_id": 0, "status": 0x81})
    assert zigbee_se.decode_frame("drlc", default).fields == {"command_id": 0, "status": 0x81}
    with pytest.raises(EncodeError) as info:  # an attribute the codec does not know needs its type
        zigbee_se.encode_frame("drlc", "report_attributes", {"records": [{"attribute_id": 0x4000, "value": 1}]})
    assert info.value.field == "records[0].data_type"
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("metering", "report_attributes",
                               {"records": [{"attribute_id": 0, "data_type": 0x23, "value": 1}]})
    assert "0x25" in info.value.limit
    with pytest.raises(DecodeError) as info:  # arrays are not something SE devices send us
        zigbee_se.decode_frame("metering", bytes.fromhex("18010a" "0000" "48" "0000"))
    assert "not supported" in info.value.reason


def test_utc_time_helpers() -> None:
    moment = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    assert zigbee_se.utc_from_datetime(moment) == 770558400
    assert (770558400).to_bytes(4, "little").hex() == "c0c9ed2d"
    assert zigbee_se.datetime_from_utc(770558400) == moment
    assert zigbee_se.datetime_from_utc(0xFFFFFFFF) is None
    with pytest.raises(EncodeError):
        zigbee_se.utc_from_datetime(datetime(2024, 6, 1))  # naive
    with pytest.raises(EncodeError):
        zigbee_se.utc_from_datetime(datetime(1999, 12, 31, tzinfo=UTC))


def test_price_and_temperature_helpers() -> None:
    assert zigbee_se.decimal_to_price(Decimal("0.1234")) == (1234, 4)
    assert zigbee_se.decimal_to_price("12.50", 2) == (1250, 2)
    assert zigbee_se.price_to_decimal(2599, 2) == Decimal("25.99")
    with pytest.raises(EncodeError) as info:
        zigbee_se.decimal_to_price("0.125", 2)
    assert "exact with 2" in info.value.limit
    with pytest.raises(EncodeError) as info:
        zigbee_se.decimal_to_price("50000000", 2)
    assert "uint32" in info.value.limit
    assert zigbee_se.set_point_from_celsius("-5") == -500
    assert zigbee_se.celsius_from_set_point(2250) == Decimal("22.50")
    assert zigbee_se.celsius_from_set_point(-32768) is None
    assert zigbee_se.offset_from_celsius(2.5) == 25
    assert zigbee_se.celsius_from_offset(0xFF) is None
    with pytest.raises(EncodeError):
        zigbee_se.offset_from_celsius("25.5")
    with pytest.raises(EncodeError):
        zigbee_se.set_point_from_celsius("-300")


def test_version_parsing() -> None:
    assert SEVersion.parse("1.2") is SEVersion.V1_2
    assert str(SEVersion.V1_0) == "1.0"


def test_an_optional_text_that_is_not_utf8_stays_raw_as_trailing_bytes() -> None:
    # A device answering with Latin-1 still has its confirmation read; the response stays raw.
    frame = bytes.fromhex("010401" "09000000" "64000000" "02" "05") + b"Str\xf8m"
    decoded = zigbee_se.decode_frame("messaging", frame)
    assert decoded.fields == {"message_id": 9, "confirmation_time": 100, "message_confirmation_control": 2}
    assert decoded.trailing == b"\x05Str\xf8m"


def test_report_event_status_without_signature_bytes_when_asked() -> None:
    fields = {"issuer_event_id": 7, "event_status": 0x02, "event_status_time": 5, "criticality_level_applied": 3,
              "signature": None}
    payload = zigbee_se.encode_payload("drlc", "report_event_status", fields)
    assert len(payload) == 18  # Exegin's form
    frame = zigbee_se.encode_frame("drlc", "report_event_status", fields)
    assert "signature" not in zigbee_se.decode_frame("drlc", frame).fields


def test_write_attributes_of_the_drlc_client_and_its_response() -> None:
    write = zigbee_se.encode_frame(
        "drlc", "write_attributes",
        {"records": [{"attribute_id": "start_randomization_minutes", "value": 10},
                     {"attribute_id": 0x0002, "value": 5}]},
        direction=Direction.SERVER_TO_CLIENT, tsn=4,
    )
    assert write == bytes.fromhex("080402" "0100" "20" "0a" "0200" "20" "05")
    decoded = zigbee_se.decode_frame("drlc", write)
    assert decoded.command == "write_attributes"
    assert [r["name"] for r in decoded.fields["records"]] == ["start_randomization_minutes",
                                                               "duration_randomization_minutes"]
    ok = zigbee_se.encode_frame("drlc", "write_attributes_response", {"records": [{"status": 0}]},
                                direction=Direction.CLIENT_TO_SERVER, tsn=4)
    assert ok == bytes.fromhex("000404" "00")
    assert zigbee_se.decode_frame("drlc", ok).fields == {"records": [{"status": 0}]}
    refused = zigbee_se.encode_frame(
        "drlc", "write_attributes_response",
        {"records": [{"status": 0x87, "attribute_id": 0x0001}]}, direction=Direction.CLIENT_TO_SERVER,
    )
    assert refused[3:] == bytes.fromhex("870100")
    assert zigbee_se.decode_frame("drlc", refused).fields["records"][0]["attribute_id"] == 1


@pytest.mark.parametrize(("command", "command_id"), [
    ("write_attributes_undivided", 0x03), ("write_attributes_no_response", 0x05)])
def test_write_attributes_undivided_and_no_response_read_as_zigpy_reads_them(
        command: str, command_id: int) -> None:
    from zigpy.zcl import foundation

    records = [{"attribute_id": "utility_enrollment_group", "value": 7},
               {"attribute_id": 0x0003, "value": 0x0005}]
    frame = zigbee_se.encode_frame("drlc", command, {"records": records},
                                   direction=Direction.SERVER_TO_CLIENT, tsn=9)
    # DeviceClassValue goes out as the codec types it, map16 (0x19); SE declares it uint16 (0x21).
    assert frame == bytes([0x08, 9, command_id]) + bytes.fromhex("0000" "20" "07" "0300" "19" "0500")
    decoded = zigbee_se.decode_frame("drlc", frame)
    assert decoded.command == command and decoded.command_id == command_id
    assert [(r["name"], r["value"]) for r in decoded.fields["records"]] == [
        ("utility_enrollment_group", 7), ("device_class_value", 5)]
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand(command_id)].schema
    theirs, rest = schema.deserialize(frame[3:])
    assert rest == b""
    assert [(a.attrid, a.value.type, a.value.value) for a in theirs.attributes] == [
        (0x0000, 0x20, 7), (0x0003, 0x19, 5)]


def test_write_attributes_response_with_mixed_statuses_lists_only_the_failures() -> None:
    # ZCL 07-5123 §2.5.5: records only for the attributes not written; one SUCCESS byte only when
    # all were. A SUCCESS byte per written attribute made zigpy read "all succeeded" and our own
    # decoder misalign (issue 13).
    mixed = zigbee_se.encode_frame(
        "drlc", "write_attributes_response",
        {"records": [{"status": 0, "attribute_id": 0x0000}, {"status": 0x87, "attribute_id": 0x0001},
                     {"status": 0}, {"status": 0x88, "attribute_id": "duration_randomization_minutes"}]},
        direction=Direction.CLIENT_TO_SERVER, tsn=4,
    )
    assert mixed == bytes.fromhex("000404" "870100" "880200")
    assert zigbee_se.decode_frame("drlc", mixed).fields == {"records": [
        {"status": 0x87, "attribute_id": 1, "name": "start_randomization_minutes"},
        {"status": 0x88, "attribute_id": 2, "name": "duration_randomization_minutes"},
    ]}
    all_written = zigbee_se.encode_frame(
        "drlc", "write_attributes_response",
        {"records": [{"status": 0, "attribute_id": 0x0000}, {"status": 0, "attribute_id": 0x0001}]},
        direction=Direction.CLIENT_TO_SERVER, tsn=4,
    )
    assert all_written == bytes.fromhex("000404" "00")


def test_write_attributes_response_decoding_refuses_what_no_stack_sends() -> None:
    with pytest.raises(DecodeError) as info:  # no status record at all
        zigbee_se.decode_frame("drlc", bytes.fromhex("000404"))
    assert "at least one" in info.value.reason
    with pytest.raises(DecodeError) as info:  # a bare SUCCESS byte among failure records
        zigbee_se.decode_frame("drlc", bytes.fromhex("000404" "00" "870100"))
    assert info.value.offset == 3


def test_reporting_configuration_carries_a_reportable_change_for_analog_types_only() -> None:
    fields = {"records": [
        {"attribute_id": "instantaneous_demand", "min_interval": 1, "max_interval": 60, "reportable_change": 10},
        {"attribute_id": "status", "min_interval": 0, "max_interval": 0xFFFF},  # map8: discrete
        {"direction": 1, "attribute_id": 0x0000, "timeout": 30},
    ]}
    frame = zigbee_se.encode_frame("metering", "configure_reporting", fields, max_frame_size=None)
    assert frame[3:] == bytes.fromhex("0000042a01003c000a0000" "000002180000ffff" "0100001e00")
    decoded = zigbee_se.decode_frame("metering", frame).fields["records"]
    assert decoded[0]["reportable_change"] == 10 and "reportable_change" not in decoded[1]
    assert zigbee_se.encode_frame("metering", "configure_reporting", {"records": decoded},
                                  max_frame_size=None) == frame
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("metering", "configure_reporting", {"records": [
            {"attribute_id": "status", "min_interval": 0, "max_interval": 1, "reportable_change": 1}]})
    assert info.value.field == "records[0].reportable_change" and "discrete" in info.value.limit
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("metering", "configure_reporting", {"records": [
            {"attribute_id": 0x0400, "min_interval": 0, "max_interval": 1}]})
    assert info.value.field == "records[0].reportable_change"
    with pytest.raises(DecodeError) as info:  # direction 2 is reserved: the record's layout is unknown
        zigbee_se.decode_frame("metering", bytes.fromhex("000006" "020004"))
    assert info.value.offset == 3
    ok = zigbee_se.encode_frame("metering", "configure_reporting_response",
                                {"records": [{"status": 0, "attribute_id": 0x0400}]})
    assert ok[3:] == b"\x00"


def test_discovery_and_structured_access_limits() -> None:
    with pytest.raises(DecodeError) as info:
        zigbee_se.decode_frame("metering", bytes.fromhex("08000d" "02" "000025"))
    assert "Boolean" in info.value.reason
    with pytest.raises(EncodeError) as info:
        zigbee_se.encode_frame("metering", "read_attributes_structured",
                               {"records": [{"attribute_id": 0x1234, "indexes": list(range(16))}]})
    assert info.value.field == "records[0].indexes"
    with pytest.raises(EncodeError) as info:  # an element's type is not the attribute's: say it
        zigbee_se.encode_frame("metering", "write_attributes_structured",
                               {"records": [{"attribute_id": 0x0400, "indexes": [1], "value": 5}]})
    assert info.value.field == "records[0].data_type"
    answer = zigbee_se.encode_frame("price", "discover_commands_generated_response",
                                    {"discovery_complete": True, "command_ids": [0, 1, 2]})
    assert answer[2:] == bytes.fromhex("14" "01" "000102")


@pytest.mark.parametrize("cluster", [None, 1795.0, ["messaging"], {"id": 1795}, b"messaging"])
def test_a_cluster_of_another_type_is_an_encode_error(cluster: object) -> None:
    # `hangw se encode -` hands JSON values through: nothing but a typed error may come back, even
    # once the int cluster's frame is cached (1795.0 == 1795 as a dict key).
    zigbee_se.encode_frame(0x0703, "cancel_message", {"message_id": 5})
    with pytest.raises(EncodeError) as caught:
        zigbee_se.encode_frame(cluster, "cancel_message", {"message_id": 5})  # type: ignore[arg-type]
    assert caught.value.field == "cluster" and caught.value.value == cluster
