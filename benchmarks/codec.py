"""Codec speed against a hand-written struct.pack/struct.unpack baseline for the same frames.

    python -m benchmarks.codec [--rounds 7] [--number 20000]

The baseline is what one would write by hand for exactly these three frames: no validation, no
lookup, one struct per frame. It produces the same result as the codec — the whole frame's bytes
from the same field values, and a dict of the same named fields with the text decoded — which the
script checks before timing. zigpy's own types run the same frames for reference. The last line
prints `codec ratio vs hand-written struct: encode=X decode=Y` (baseline time / codec time; the
issue's bar is 0.35 for both).
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable
from typing import Any

import zigpy.types as t
from zigpy.zcl import foundation

import zigbee_se
from zigbee_se import SEVersion

VERSION = SEVersion.V1_1

DISPLAY = {
    "message_id": 0x12345678, "message_control": 0x80, "start_time": 0,
    "duration_in_minutes": 60, "message": "Peak pricing 2-6pm, please reduce use",
}
PRICE = {
    "provider_id": 1, "rate_label": "PEAK", "issuer_event_id": 256, "current_time": 770558400,
    "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 2, "price_tier": 3,
    "number_of_price_tiers": 3, "register_tier": 3, "start_time": 770558400,
    "duration_in_minutes": 240, "price": 2599, "price_ratio": 0xFF, "generation_price": 0xFFFFFFFF,
    "generation_price_ratio": 0xFF, "alternate_cost_delivered": 0xFFFFFFFF,
    "alternate_cost_unit": 0xFF, "alternate_cost_trailing_digit": 0xFF,
    "number_of_block_thresholds": 0, "price_control": 1,
}
LCE = {
    "issuer_event_id": 1001, "device_class": 0x0001, "utility_enrollment_group": 0, "start_time": 0,
    "duration_in_minutes": 120, "criticality_level": 3, "cooling_temperature_offset": 20,
    "heating_temperature_offset": 0xFF, "cooling_temperature_set_point": -0x8000,
    "heating_temperature_set_point": -0x8000, "average_load_adjustment_percentage": -0x80,
    "duty_cycle": 0xFF, "event_control": 1,
}
CASES = (
    ("messaging", "display_message", DISPLAY),
    ("price", "publish_price", PRICE),
    ("drlc", "load_control_event", LCE),
)

# ---------------------------------------------------------------------------- hand-written baseline

_DM_HEAD = struct.Struct("<BBBIBIHB")
_PP_A = struct.Struct("<BBBIB")
_PP_B = struct.Struct("<IIBHBBIHIBIBIBBBB")
_LCE = struct.Struct("<BBBIHBIHBBBhhbBB")


def hand_encode_display(f: dict[str, Any], tsn: int) -> bytes:
    text = f["message"].encode("utf-8")
    return _DM_HEAD.pack(0x09, tsn, 0x00, f["message_id"], f["message_control"], f["start_time"],
                         f["duration_in_minutes"], len(text)) + text


def hand_decode_display(frame: bytes) -> dict[str, Any]:
    _fc, _tsn, _cmd, mid, ctrl, start, dur, n = _DM_HEAD.unpack_from(frame)
    text = frame[_DM_HEAD.size:_DM_HEAD.size + n].decode("utf-8")
    return {"message_id": mid, "message_control": ctrl, "start_time": start,
            "duration_in_minutes": dur, "message": text}


def hand_encode_price(f: dict[str, Any], tsn: int) -> bytes:
    label = f["rate_label"].encode("utf-8")
    return (
        _PP_A.pack(0x09, tsn, 0x00, f["provider_id"], len(label)) + label + _PP_B.pack(
            f["issuer_event_id"], f["current_time"], f["unit_of_measure"], f["currency"],
            f["price_trailing_digit"] << 4 | f["price_tier"],
            f["number_of_price_tiers"] << 4 | f["register_tier"], f["start_time"],
            f["duration_in_minutes"], f["price"], f["price_ratio"], f["generation_price"],
            f["generation_price_ratio"], f["alternate_cost_delivered"], f["alternate_cost_unit"],
            f["alternate_cost_trailing_digit"], f["number_of_block_thresholds"], f["price_control"],
        )
    )


def hand_decode_price(frame: bytes) -> dict[str, Any]:
    _fc, _tsn, _cmd, provider, n = _PP_A.unpack_from(frame)
    o = _PP_A.size
    label = frame[o:o + n].decode("utf-8")
    (event, now, unit, currency, digits_tier, tiers_register, start, dur, price, ratio, gen,
     gen_ratio, alt, alt_unit, alt_digits, thresholds, control) = _PP_B.unpack_from(frame, o + n)
    return {
        "provider_id": provider, "rate_label": label, "issuer_event_id": event, "current_time": now,
        "unit_of_measure": unit, "currency": currency, "price_trailing_digit": digits_tier >> 4,
        "price_tier": digits_tier & 15, "number_of_price_tiers": tiers_register >> 4,
        "register_tier": tiers_register & 15, "start_time": start, "duration_in_minutes": dur,
        "price": price, "price_ratio": ratio, "generation_price": gen,
        "generation_price_ratio": gen_ratio, "alternate_cost_delivered": alt,
        "alternate_cost_unit": alt_unit, "alternate_cost_trailing_digit": alt_digits,
        "number_of_block_thresholds": thresholds, "price_control": control,
    }


def hand_encode_lce(f: dict[str, Any], tsn: int) -> bytes:
    return _LCE.pack(
        0x09, tsn, 0x00, f["issuer_event_id"], f["device_class"], f["utility_enrollment_group"],
        f["start_time"], f["duration_in_minutes"], f["criticality_level"],
        f["cooling_temperature_offset"], f["heating_temperature_offset"],
        f["cooling_temperature_set_point"], f["heating_temperature_set_point"],
        f["average_load_adjustment_percentage"], f["duty_cycle"], f["event_control"],
    )


_LCE_NAMES = tuple(LCE)


def hand_decode_lce(frame: bytes) -> dict[str, Any]:
    return dict(zip(_LCE_NAMES, _LCE.unpack_from(frame)[3:], strict=True))


HAND = {
    "display_message": (hand_encode_display, hand_decode_display),
    "publish_price": (hand_encode_price, hand_decode_price),
    "load_control_event": (hand_encode_lce, hand_decode_lce),
}

# ---------------------------------------------------------------------------- zigpy reference


ZigpyCodec = tuple[Callable[[dict[str, Any], int], bytes], Callable[[bytes], dict[str, Any]]]


def zigpy_codecs() -> dict[str, ZigpyCodec]:
    """The same frames through zigpy's types (zigpy has no SE command definitions, so the schemas
    are declared here the way zigpy declares its own clusters)."""
    schemas = {
        "display_message": {
            "message_id": t.uint32_t, "message_control": t.bitmap8, "start_time": t.uint32_t,
            "duration_in_minutes": t.uint16_t, "message": t.CharacterString,
        },
        "load_control_event": {
            "issuer_event_id": t.uint32_t, "device_class": t.bitmap16,
            "utility_enrollment_group": t.uint8_t, "start_time": t.uint32_t,
            "duration_in_minutes": t.uint16_t, "criticality_level": t.uint8_t,
            "cooling_temperature_offset": t.uint8_t, "heating_temperature_offset": t.uint8_t,
            "cooling_temperature_set_point": t.int16s, "heating_temperature_set_point": t.int16s,
            "average_load_adjustment_percentage": t.int8s, "duty_cycle": t.uint8_t,
            "event_control": t.bitmap8,
        },
    }
    out = {}
    for name, schema in schemas.items():
        cmd = foundation.ZCLCommandDef(
            id=0x00, schema=schema, direction=foundation.Direction.Server_to_Client, name=name
        ).with_compiled_schema()

        def enc(f: dict[str, Any], tsn: int, cmd: Any = cmd) -> bytes:
            hdr = foundation.ZCLHeader(
                frame_control=foundation.FrameControl(
                    frame_type=foundation.FrameType.CLUSTER_COMMAND, is_manufacturer_specific=False,
                    direction=foundation.Direction.Server_to_Client, disable_default_response=False,
                    reserved=0,
                ),
                tsn=tsn, command_id=cmd.id,
            )
            return bytes(hdr.serialize() + cmd.schema(**f).serialize())

        def dec(frame: bytes, cmd: Any = cmd) -> dict[str, Any]:
            _hdr, rest = foundation.ZCLHeader.deserialize(frame)
            value, _ = cmd.schema.deserialize(rest)
            return {k: (str(v) if isinstance(v, str) else int(v)) for k, v in value.as_dict().items()}

        out[name] = (enc, dec)
    return out


# ---------------------------------------------------------------------------- timing


def best(fn: Callable[[], Any], number: int, rounds: int) -> float:
    return best_pair(fn, None, number, rounds)[0]


def best_pair(a: Callable[[], Any], b: Callable[[], Any] | None, number: int, rounds: int) -> tuple[float, float]:
    """Best time per call of `a` and `b`, measured in alternating rounds so that a busy machine
    slows both alike; the minimum is the least disturbed round."""
    times_a, times_b = [], []
    for _ in range(rounds):
        for fn, times in ((a, times_a), (b, times_b)):
            if fn is None:
                continue
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append(time.perf_counter() - start)
    return min(times_a) / number, (min(times_b) / number if times_b else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    zigpy = zigpy_codecs()

    totals = {"codec_enc": 0.0, "codec_dec": 0.0, "hand_enc": 0.0, "hand_dec": 0.0}
    head = ("frame", "op", "hand µs", "codec µs", "ratio", "zigpy µs", "zigpy ratio")
    print(f"{head[0]:20s} {head[1]:6s} {head[2]:>9s} {head[3]:>9s} {head[4]:>6s} {head[5]:>9s} {head[6]:>11s}")
    for cluster, command, fields in CASES:
        hand_enc, hand_dec = HAND[command]
        frame = zigbee_se.encode_frame(cluster, command, fields, se_version=VERSION, tsn=7)
        # Same result from both, before anything is timed.
        assert hand_enc(fields, 7) == frame, command
        assert hand_dec(frame) == zigbee_se.decode_frame(cluster, frame).fields, command

        def c_enc(cluster: str = cluster, command: str = command, fields: dict[str, Any] = fields) -> bytes:
            return zigbee_se.encode_frame(cluster, command, fields, se_version=VERSION, tsn=7)

        def c_dec(cluster: str = cluster, frame: bytes = frame) -> dict[str, Any]:
            return zigbee_se.decode_frame(cluster, frame).fields

        results = {}
        def h_enc(hand_enc: Any = hand_enc, fields: dict[str, Any] = fields) -> bytes:
            return hand_enc(fields, 7)  # type: ignore[no-any-return]

        def h_dec(hand_dec: Any = hand_dec, frame: bytes = frame) -> dict[str, Any]:
            return hand_dec(frame)  # type: ignore[no-any-return]

        for op, hand_fn, codec_fn in (("encode", h_enc, c_enc), ("decode", h_dec, c_dec)):
            h, c = best_pair(hand_fn, codec_fn, args.number, args.rounds)
            z_text = z_ratio = "-"
            if command in zigpy:
                z_fn = zigpy[command][0 if op == "encode" else 1]
                z_call = (
                    (lambda z_fn=z_fn, fields=fields: z_fn(fields, 7))
                    if op == "encode"
                    else (lambda z_fn=z_fn, frame=frame: z_fn(frame))
                )
                if op == "encode":
                    assert z_fn(fields, 7) == frame, f"zigpy {command} differs"
                zt = best(z_call, max(args.number // 10, 100), args.rounds)
                z_text, z_ratio = f"{zt * 1e6:9.2f}", f"{h / zt:11.3f}"
            results[op] = (h, c)
            print(f"{command:20s} {op:6s} {h * 1e6:9.2f} {c * 1e6:9.2f} {h / c:6.2f} {z_text:>9s} {z_ratio:>11s}")
        totals["hand_enc"] += results["encode"][0]
        totals["codec_enc"] += results["encode"][1]
        totals["hand_dec"] += results["decode"][0]
        totals["codec_dec"] += results["decode"][1]
    enc_ratio = totals["hand_enc"] / totals["codec_enc"]
    dec_ratio = totals["hand_dec"] / totals["codec_dec"]
    print(f"codec ratio vs hand-written struct: encode={enc_ratio:.2f} decode={dec_ratio:.2f}")


if __name__ == "__main__":
    main()
