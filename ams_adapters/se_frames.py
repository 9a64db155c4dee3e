"""The SE ZCL frame of a HAN operation, encoded by the routes that send frames (the radio, the binary
head-end protocol, the simulated field) from the operation's fields and the meter's SE version.

Routes that carry the SE fields instead (MultiSpeak, IEC 61968-9: the head-end encodes the frame
for its meter) never call this. The gateway stores no frame: a request's fields are the record,
and its frame at a given SE version is this encoding of them (deterministic: the golden vectors of
`zigbee_se` pin every byte).

An operation's fields are the union of what the command's layouts need across SE versions (a
price's SE 1.1 Price Control, a block period's SE 1.1 and 1.2 fields); each version's encoder is
given the fields its layout defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ams_adapters.contract import HanOperation
from zigbee_se import Direction, NibblePair, SEVersion, command_definitions, encode_frame

# Fields that identify the SE event or message; the low byte of the gateway's SE id is the frame's
# ZCL transaction sequence number (so a device's answer and a capture line up with the id).
_ID_FIELDS = ("message_id", "issuer_event_id")
# Added in SE 1.1 to commands that SE 1.0 also has: left out of an SE 1.0 frame.
_SINCE_1_1 = ("price_control", "number_of_block_thresholds")
CACHE_SIZE = 4096
# Global commands the gateway sends to a device's *client* attributes (the ESI's side writes the
# DRLC client's enrollment group and randomization minutes): server -> client. The command table's
# default for Write Attributes is client -> server, towards a server's attributes.
_TO_CLIENT = frozenset({"write_attributes"})


def transaction_number(fields: Mapping[str, Any]) -> int:
    """The ZCL TSN the gateway uses for a command: the low byte of its message / issuer event id."""
    for name in _ID_FIELDS:
        value = fields.get(name)
        if isinstance(value, int):
            return value & 0xFF
    return 0


def _layout_fields(cluster_id: int, command: str, version: SEVersion, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `command`'s layout for `version` (commands whose layouts differ between
    versions, e.g. PublishBlockPeriod in SE 1.1 and 1.2, carry the union of both)."""
    layouts = [d for d in command_definitions(cluster_id, command) if d.since <= version]
    if not layouts:
        return dict(fields)  # the encoder names the version it needs
    names: set[str] = set()
    for item in layouts[-1].fields_for(version):
        names.update((item.high.name, item.low.name) if isinstance(item, NibblePair) else (item.name,))
    return {k: v for k, v in fields.items() if k in names}


def encode_command(cluster_id: int, command: str, fields: Mapping[str, Any],
                   se_version: SEVersion | str, *, tsn: int | None = None,
                   max_frame_size: int | None = None) -> bytes:
    """The whole ZCL frame of an SE command for a meter of `se_version`. `max_frame_size` is the
    single-frame budget of the route (None: the route's frames may be fragmented, only the SE
    limits apply). Raises `zigbee_se.EncodeError` naming the field, the value and the limit."""
    version = SEVersion.parse(se_version)
    chosen: Mapping[str, Any] = fields
    if version < SEVersion.V1_1 and any(name in fields for name in _SINCE_1_1):
        chosen = {k: v for k, v in fields.items() if k not in _SINCE_1_1}
    if command == "publish_block_period":
        chosen = _layout_fields(cluster_id, command, version, chosen)
    number = transaction_number(fields) if tsn is None else tsn & 0xFF
    direction = Direction.SERVER_TO_CLIENT if command in _TO_CLIENT else None
    return encode_frame(cluster_id, command, chosen, se_version=version, tsn=number, max_frame_size=max_frame_size,
                        direction=direction)


# (id of the fields mapping, SE version, budget) -> (that mapping, its frame). The dispatcher hands
# every operation of one request the same fields mapping, so a fan-out's batch is encoded once per
# SE version, not once per premise. The entry keeps the mapping alive, so its id cannot be reused
# by another mapping while the entry exists (the `is` check below is then exact).
_FRAMES: dict[tuple[int, SEVersion, int | None, int | None], tuple[Mapping[str, Any], bytes]] = {}


def operation_frame(op: HanOperation, *, max_frame_size: int | None = None) -> bytes:
    """The frame of `op` for its SE version (see `encode_command`), cached per request (fields
    mapping) and SE version. Raises `zigbee_se.EncodeError`."""
    key = (id(op.fields), op.se_version, max_frame_size, op.tsn)
    found = _FRAMES.get(key)
    if found is not None and found[0] is op.fields:
        return found[1]
    frame = encode_command(op.cluster_id, op.command, op.fields, op.se_version, tsn=op.tsn,
                           max_frame_size=max_frame_size)
    if len(_FRAMES) >= CACHE_SIZE:
        del _FRAMES[next(iter(_FRAMES))]  # the oldest: fan-outs move on, their first batches are done
    _FRAMES[key] = (op.fields, frame)
    return frame
