"""Properties: every command of every SE version round-trips; decoding any bytes raises nothing but
DecodeError; the fast frame encoder never accepts what the precise encoder refuses."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zigbee_se
from zigbee_se import ALL_COMMANDS, CommandDef, DecodeError, EncodeError, SEVersion
from zigbee_se.compiler import _slow_frame

from .strategies import expected_decoded, fields_for, typical_fields

CASES = [
    pytest.param(cmd, version, id=f"{cmd.name}-{version}")
    for cmd in ALL_COMMANDS
    for version in SEVersion
    # PublishBlockPeriod has one definition per layout: each is tested with the versions that use it
    if version >= cmd.since and not (cmd.name == "publish_block_period" and cmd.since == SEVersion.V1_1
                                     and version > SEVersion.V1_1)
]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("cmd", "version"), CASES)
@SETTINGS
@given(data=st.data())
def test_encode_decode_round_trip(cmd: CommandDef, version: SEVersion, data: st.DataObject) -> None:
    fields = data.draw(fields_for(cmd, version))
    tsn = data.draw(st.integers(0, 255))
    frame = zigbee_se.encode_frame(cmd.cluster, cmd.name, fields, se_version=version, tsn=tsn, max_frame_size=None)
    decoded = zigbee_se.decode_frame(cmd.cluster, frame, se_version=version)
    assert decoded.command == cmd.name
    assert decoded.tsn == tsn
    assert decoded.direction == cmd.direction
    assert decoded.fields == expected_decoded(cmd, version, fields)
    assert decoded.trailing == b""
    # The payload alone is the frame less its 3-byte header.
    assert zigbee_se.encode_payload(cmd.cluster, cmd.name, fields, se_version=version) == frame[3:]


@pytest.mark.parametrize(("cmd", "version"), CASES)
@SETTINGS
@given(data=st.data())
def test_decoder_accepts_any_optional_boundary_and_reports_trailing(
    cmd: CommandDef, version: SEVersion, data: st.DataObject
) -> None:
    fields = data.draw(fields_for(cmd, version))
    frame = zigbee_se.encode_frame(cmd.cluster, cmd.name, fields, se_version=version, max_frame_size=None)
    extra = data.draw(st.binary(min_size=1, max_size=8))
    expected = expected_decoded(cmd, version, fields)
    if cmd.name != "publish_block_period":  # its layout is told apart by length: see test_codec_units
        decoded = zigbee_se.decode_frame(cmd.cluster, frame + extra, se_version=version)
        # The version's fields come out intact; what follows is either a later version's optional
        # fields or reported as trailing bytes — never decoded into this version's fields, never fatal.
        assert {k: decoded.fields[k] for k in expected} == expected
        assert (frame + extra).endswith(decoded.trailing)
        if version == SEVersion.V1_2 or all(item.since <= version for item in cmd.fields):
            assert decoded.trailing == extra
    # Cutting the payload anywhere: a cut inside the mandatory fields is a DecodeError at or before
    # the cut; after them, the whole optional fields that remain decode and the rest is trailing.
    for cut in range(3, len(frame) + 1):
        try:
            decoded = zigbee_se.decode_frame(cmd.cluster, frame[:cut], se_version=version)
        except DecodeError as exc:
            assert 0 <= exc.offset <= cut
            continue
        assert decoded.fields == {k: expected[k] for k in decoded.fields}
        assert frame[:cut].endswith(decoded.trailing)


CLUSTERS = [0x000A, 0x0700, 0x0701, 0x0702, 0x0703, 0x0006]


@settings(max_examples=3000, deadline=None)
@given(cluster=st.sampled_from(CLUSTERS), data=st.binary(max_size=80))
def test_random_bytes_raise_only_decode_error(cluster: int, data: bytes) -> None:
    try:
        zigbee_se.decode_frame(cluster, data)
    except DecodeError as exc:
        assert 0 <= exc.offset <= max(len(data), 1)


def _valid_frames() -> list[tuple[int, bytes]]:
    frames = []
    for cmd in ALL_COMMANDS:
        version = cmd.since if cmd.name == "publish_block_period" else SEVersion.V1_2
        example = typical_fields(cmd, version)
        frames.append((cmd.cluster, zigbee_se.encode_frame(cmd.cluster, cmd.name, example, se_version=version,
                                                          max_frame_size=None)))
    return frames


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_frames_raise_only_decode_error(data: st.DataObject) -> None:
    cluster, frame = data.draw(st.sampled_from(_VALID))
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        at = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if action == "flip" and mutated:
            mutated[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "cut":
            del mutated[at:]
        elif action == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif mutated:
            mutated[at] = data.draw(st.sampled_from([0x00, 0xFF, 0x80, 0x7F, 0xFE]))
    with contextlib.suppress(DecodeError):  # anything else escaping fails the test
        zigbee_se.decode_frame(cluster, bytes(mutated))


_VALID = _valid_frames()

ANY_VALUE = st.one_of(
    st.integers(-(2**40), 2**40), st.integers(-5, 300), st.none(), st.booleans(), st.floats(allow_nan=False),
    st.text(max_size=70), st.binary(max_size=50),
)


@pytest.mark.parametrize(("cmd", "version"), CASES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fast_encoder_agrees_with_precise_encoder(cmd: CommandDef, version: SEVersion, data: st.DataObject) -> None:
    from zigbee_se.codec import _BY_NAME

    compiled = next(c for c in _BY_NAME[(cmd.cluster, cmd.name)] if c.definition is cmd)
    fields: dict[str, Any] = dict(data.draw(fields_for(cmd, version)))
    # Corrupt some of the fields (or add unknown/later ones) with any kind of value.
    names = [*fields, "unknown_field", *cmd.field_names]
    for name in data.draw(st.lists(st.sampled_from(names), max_size=3)):
        fields[name] = data.draw(ANY_VALUE)
    for name in data.draw(st.lists(st.sampled_from([*fields] or ["x"]), max_size=1)):
        fields.pop(name, None)
    fast = compiled.frame_encoders[version]
    try:
        expected: bytes | type[EncodeError] = _slow_frame(fields, 0x09, 7, cmd.command_id, compiled.encoders[version])
    except EncodeError:
        expected = EncodeError
    if expected is EncodeError:
        with pytest.raises(EncodeError):
            fast(fields, 0x09, 7)
    else:
        assert fast(fields, 0x09, 7) == expected
