"""The frame routes' encoding (ams_adapters/se_frames.py) and the one text-limit rule
(ams_adapters/text_limit.py)."""

from __future__ import annotations

import time

import pytest

from ams_adapters.contract import CAPABLE_DEVICES, HanOperation, OperationKind, RouteCapabilities
from ams_adapters.profiles import load_profile
from ams_adapters.se_frames import encode_command, operation_frame, transaction_number
from ams_adapters.text_limit import ZCL_STRING_BYTES, over_text_limit, text_limit
from zigbee_se import EncodeError, SEVersion, decode_frame

PRICE = {"provider_id": 1, "rate_label": "TOU", "issuer_event_id": 0x10102, "current_time": 0,
         "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 2, "price_tier": 1,
         "number_of_price_tiers": 3, "register_tier": 1, "start_time": 0, "duration_in_minutes": 60,
         "price": 1234, "price_control": 0x01}
BLOCK = {"provider_id": 1, "issuer_event_id": 9, "block_period_start_time": 0, "block_period_duration": 60,
         "number_of_price_tiers": 2, "number_of_block_thresholds": 3, "block_period_control": 0,
         "block_period_duration_type": 0, "tariff_type": 0, "tariff_resolution_period": 0}


def _op(fields: dict[str, object], version: SEVersion, outbound_id: str = "o1") -> HanOperation:
    return HanOperation(outbound_id, "10443720000000001", CAPABLE_DEVICES, OperationKind.PRICE, 0x0700,
                        "publish_price", fields, version, time.time() + 60)


def test_each_se_version_gets_its_layout_and_the_tsn_is_the_low_byte_of_the_id() -> None:
    v10, v11 = (encode_command(0x0700, "publish_price", PRICE, v) for v in ("1.0", "1.1"))
    # SE 1.1's Price Control (and the fields after it) are left out of the SE 1.0 frame.
    assert len(v10) < len(v11) and "price_control" not in decode_frame(0x0700, v10, se_version="1.0").fields
    assert decode_frame(0x0700, v11).fields["price_control"] == 0x01
    assert v10[1] == v11[1] == 0x02 == transaction_number(PRICE)
    b11, b12 = (encode_command(0x0700, "publish_block_period", BLOCK, v) for v in ("1.1", "1.2"))
    assert (len(b11), len(b12)) == (3 + 17, 3 + 19)  # one field set, each version's own layout
    with pytest.raises(EncodeError) as info:
        encode_command(0x0700, "publish_block_period", BLOCK, "1.0")
    assert info.value.field == "se_version"


def test_a_request_is_encoded_once_per_se_version_not_once_per_premise() -> None:
    shared = dict(PRICE)
    first = [operation_frame(_op(shared, SEVersion.V1_1, f"o{i}")) for i in range(3)]
    assert first[0] is first[1] is first[2]  # one encoding for every premise of the request
    for version in (SEVersion.V1_0, SEVersion.V1_2):  # each SE version its own entry
        assert operation_frame(_op(shared, version)) == encode_command(0x0700, "publish_price", PRICE, version)
    other = operation_frame(_op(dict(PRICE), SEVersion.V1_1))  # another request, equal fields
    assert other == first[0] and other is not first[0]


def test_a_frame_over_the_routes_budget_names_the_text() -> None:
    fields = {"message_id": 1, "message_control": 0, "start_time": 0, "duration_in_minutes": 1,
              "message": "é" * 30}
    op = HanOperation("t", "10443720000000001", CAPABLE_DEVICES, OperationKind.TEXT, 0x0703, "display_message",
                      fields, SEVersion.V1_1, time.time() + 60)
    with pytest.raises(EncodeError) as info:
        operation_frame(op, max_frame_size=73)
    assert info.value.field == "message"
    assert len(operation_frame(op)) == 73 + 2  # no budget: a route whose meters fragment


def test_the_text_limit_is_the_smaller_of_the_routes_and_the_frame_budget_in_bytes() -> None:
    simulated = RouteCapabilities("simulated")  # no limit of its own, the 73-byte frame
    assert [text_limit(simulated, v).limit for v in ("1.0", "1.1", "1.2")] == [58, 58, 57]
    assert text_limit(None, "1.1").limit == 58 and text_limit(None, "1.1").route is None
    tnmp, oncor = (load_profile(t).route_capabilities() for t in ("tnmp", "oncor"))
    assert text_limit(tnmp, "1.1").limit == 57 and text_limit(tnmp, "1.1").route_limit == 57
    assert text_limit(oncor, "1.1").limit == 80 and text_limit(oncor, "1.1").frame_budget == ZCL_STRING_BYTES
    generous = RouteCapabilities("generous", max_text_bytes=200)
    assert text_limit(generous, "1.2").limit == 57  # the frame budget still applies
    assert "(the SE single-frame budget)" in text_limit(generous, "1.2").describe()
    assert "(the route's own limit)" in text_limit(tnmp, "1.1").describe()


def test_the_check_counts_utf8_bytes_and_names_the_tightest_limit() -> None:
    limits = {text_limit(None, "1.1"), text_limit(None, "1.2")}
    assert over_text_limit("é" * 28 + "x", limits) is None  # 57 bytes, 29 characters
    size, tightest = over_text_limit("é" * 29, limits) or (0, None)
    assert size == 58 and tightest is not None and (tightest.limit, tightest.se_version) == (57, SEVersion.V1_2)
    assert over_text_limit("x" * 300, []) is None  # no target: nothing to fit
