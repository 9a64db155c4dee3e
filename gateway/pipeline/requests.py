"""HAN request bodies as third parties send them, and their validation into SE commands.

Validation is pure: a body, the target meters' SE versions and their routes' text limits in, either
the SE command (its fields) or a list of typed field errors out. The gateway never stores a frame:
the routes that send frames encode the fields (ams_adapters/se_frames.py, which `encoding_errors`
uses to refuse at acceptance what could not be encoded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

# A request's kind is the kind of the HAN operation it becomes, one to one: one enum,
# ams_adapters.contract.OperationKind, imported under the name the API speaks (issue 12: the
# gateway's own copy had the same members). SET_ENROLLMENT_GROUP comes from PUT
# /v1/premises/{esi_id}/devices/{eui64}/enrollment-group (device_writes.py), never from a body of
# POST /v1/han-requests.
from ams_adapters.contract import OperationKind as RequestKind
from ams_adapters.se_frames import encode_command
from ams_adapters.text_limit import TextLimit, over_text_limit
from gateway.domain.esi_id import ESI_ID_PATTERN
from gateway.domain.model import Action
from gateway.errors import FieldError
from gateway.pipeline.config import PipelineConfig
from gateway.store.cursors import MAX_ID
from zigbee_se import (
    ClusterId,
    EncodeError,
    decimal_to_price,
    offset_from_celsius,
    set_point_from_celsius,
    utc_from_datetime,
)

# SE 1.x device classes: bits 0..11 (HVAC compressor/furnace, strip heaters, water heater, pool
# pump, smart appliances, irrigation pump, managed C&I loads, simple misc loads, exterior lighting,
# interior lighting, electric vehicle, generation systems). Anything above is not defined.
DEVICE_CLASS_BITS = 0x0FFF
IMPORTANCE = {"low": 0, "medium": 1, "high": 2, "critical": 3}


ACTION_FOR_KIND = {
    RequestKind.TEXT: Action.SEND_TEXT,
    RequestKind.CANCEL_TEXT: Action.SEND_TEXT,
    RequestKind.PRICE: Action.SEND_PRICE,
    RequestKind.LOAD_CONTROL: Action.SEND_LOAD_CONTROL,
    RequestKind.CANCEL_LOAD_CONTROL: Action.SEND_LOAD_CONTROL,
    RequestKind.CANCEL_ALL_LOAD_CONTROL: Action.SEND_LOAD_CONTROL,
    RequestKind.SET_ENROLLMENT_GROUP: Action.SEND_LOAD_CONTROL,  # the group load-control events address
}


# A decimal as a JSON number or a decimal string. pydantic documents any string; the pattern says
# which strings it parses (no NaN, no Infinity, ASCII digits).
DecimalIn = Annotated[Decimal, WithJsonSchema({"anyOf": [
    {"type": "number"},
    {"type": "string", "pattern": r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$"}]})]


# SE durations are uint16 minutes. The document states the bound; `_duration` checks it with the
# gateway's own (lower) limits, so a request's every problem is answered at once.
SE_MAX_MINUTES = 0xFFFF
SE_TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
SE_TIME_END = SE_TIME_MIN + timedelta(seconds=0xFFFFFFFF)  # UTCTime is uint32; 0xFFFFFFFF is "invalid"


def _se_time(moment: datetime) -> datetime:
    """A time that an SE UTCTime can carry. Checked here, as each field is parsed, so that a time
    outside it is a typed 422 and never reaches the encoder (which raised a 500 before)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PydanticCustomError("naive_time", "give a time zone (e.g. Z)")
    if not SE_TIME_MIN <= moment < SE_TIME_END:
        raise PydanticCustomError("time_out_of_range", "Smart Energy times run from {low} to before {high}",
                                  {"low": SE_TIME_MIN.isoformat(), "high": SE_TIME_END.isoformat()})
    return moment


SeTime = Annotated[datetime, AfterValidator(_se_time)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Targeted(_Body):
    # Exactly one of a non-empty `esi_ids` or `"all_premises": true` (RequestService.submit refuses
    # anything else with field `esi_ids`, code `targets`); the document says so with a oneOf.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["esi_ids"], "properties": {"esi_ids": {"type": "array", "minItems": 1},
                                                 "all_premises": {"const": False}}},
        {"required": ["all_premises"], "properties": {
            "all_premises": {"const": True},
            "esi_ids": {"anyOf": [{"type": "array", "maxItems": 0}, {"type": "null"}]}}},
    ]})

    esi_ids: list[str] | None = Field(default=None, max_length=1000,
                                      description="premises to reach (at least one); or set all_premises")
    all_premises: bool = Field(default=False, description="every premise under my active "
                               "agreements with the needed scope (fan-out)")


class TextRequest(Targeted):
    kind: Literal["text"]
    text: str = Field(min_length=1)
    importance: Literal["low", "medium", "high", "critical"] = "low"
    confirmation_required: bool = False
    start: SeTime | None = Field(default=None, description="ISO 8601 with zone; omitted: now")
    duration_minutes: int = Field(default=60, ge=1, description="SE uint16; the gateway's limit may be lower",
                                  json_schema_extra={"maximum": SE_MAX_MINUTES})


class BlockPeriodIn(_Body):
    """A block period (SE 1.1+ PublishBlockPeriod): consumption blocks over a period, each priced by
    the meter's block thresholds. Sent alongside the price as its own SE event."""

    start: SeTime | None = Field(default=None, description="ISO 8601 with zone; omitted: the price's start")
    # The upper bounds are checked by build_block_period with their own codes (duration_over_limit,
    # too_many_block_thresholds); the document states them too.
    duration_minutes: int = Field(ge=1, description="length of the block period in minutes",
                                  json_schema_extra={"maximum": 0xFFFFFF})
    number_of_block_thresholds: int = Field(ge=1, description="block thresholds in force (1..15)",
                                            json_schema_extra={"maximum": 15})
    repeating: bool = Field(default=False, description="the block period repeats (Block Period Control bit 1)")
    tariff_type: Literal["delivered", "received", "both"] = Field(
        default="delivered", description="SE 1.2 meters only (Tariff Type); SE 1.1 has no such field")


class PriceRequest(Targeted):
    kind: Literal["price"]
    provider_id: int = Field(ge=0, le=0xFFFFFFFF)
    rate_label: str = Field(default="", max_length=12, description="at most 12 UTF-8 bytes (SE octet string)")
    price: DecimalIn = Field(description="price per unit, e.g. \"0.1234\"")
    trailing_digits: int | None = Field(default=None, ge=0, le=15)
    currency: int = Field(default=840, ge=0, le=0xFFFF, description="ISO 4217 numeric (840 USD)")
    unit_of_measure: int = Field(default=0, ge=0, le=0xFF, description="0 = kWh")
    tier: int = Field(default=1, ge=1, le=15)
    number_of_tiers: int = Field(default=1, ge=0, le=15)
    start: SeTime | None = None
    duration_minutes: int = Field(default=60, ge=1, description="SE uint16; the gateway's limit may be lower",
                                  json_schema_extra={"maximum": SE_MAX_MINUTES})
    acknowledgement: bool = False
    block_period: BlockPeriodIn | None = None


class LoadControlRequest(Targeted):
    kind: Literal["load_control"]
    device_classes: int = Field(ge=1, le=0xFFFF)
    utility_enrollment_group: int = Field(default=0, ge=0, le=0xFF)
    criticality: int = Field(ge=1, le=15)
    start: SeTime | None = None
    duration_minutes: int = Field(ge=1, description="SE uint16; the gateway's limit may be lower",
                                  json_schema_extra={"maximum": SE_MAX_MINUTES})
    cooling_offset_c: DecimalIn | None = None
    heating_offset_c: DecimalIn | None = None
    cooling_set_point_c: DecimalIn | None = None
    heating_set_point_c: DecimalIn | None = None
    average_load_adjustment_percent: int | None = Field(default=None, ge=-100, le=100)
    duty_cycle_percent: int | None = Field(default=None, ge=0, le=100)
    randomize_start: bool = False
    randomize_end: bool = False


# The request to cancel: a row id, bounded as every id is (gateway/store/cursors.py).
RequestId = Annotated[int, Field(ge=1, le=MAX_ID, description="the id of the request to cancel (its 202's `id`)")]


class CancelTextRequest(_Body):
    kind: Literal["cancel_text"]
    request_id: RequestId


class CancelLoadControlRequest(_Body):
    kind: Literal["cancel_load_control"]
    request_id: RequestId
    effective_time: SeTime | None = Field(default=None, description="omitted: now")
    randomize_end: bool = False


class CancelAllLoadControlRequest(_Body):
    kind: Literal["cancel_all_load_control"]
    esi_id: str = Field(pattern=ESI_ID_PATTERN, description="the premise whose events of yours to cancel")


HanRequestBody = Annotated[
    TextRequest | PriceRequest | LoadControlRequest | CancelTextRequest | CancelLoadControlRequest
    | CancelAllLoadControlRequest,
    Field(discriminator="kind"),
]


@dataclass(frozen=True)
class Command:
    """A validated SE command: its fields (the union of what the command's layouts need across SE
    versions). The gateway stores and hands on the fields; the routes that send frames encode
    them for each meter's SE version (ams_adapters/se_frames.py)."""

    cluster_id: int
    command: str
    fields: dict[str, Any]
    starts_at: datetime
    ends_at: datetime

    def frame(self, se_version: str, tsn: int | None = None, max_frame_size: int | None = None) -> bytes:
        """The frame a route sends for a meter of `se_version` (TSN: the low byte of the SE id)."""
        return encode_command(self.cluster_id, self.command, self.fields, se_version, tsn=tsn,
                              max_frame_size=max_frame_size)


def encoding_errors(commands: Iterable[Command | None], versions: set[str]) -> list[FieldError]:
    """Whether the commands encode for every SE version among their targets: each is encoded and
    the frame discarded (a route encodes its own when it sends; the text's length is checked
    apart, against each route's limits). The checks before this one cover every field the third
    party gives, so an error here names a field the gateway could not carry: refused before
    acceptance rather than failed at every premise later."""
    errors: list[FieldError] = []
    for command in [c for c in commands if c is not None]:
        for version in sorted(versions):
            try:
                command.frame(version)
            except EncodeError as exc:
                errors.append(FieldError(exc.field, "not_encodable", f"SE {version}: {exc.limit}", exc.value))
    return errors


def lacks_capability(body: Any, se_version: str) -> str | None:
    """Why a meter cannot carry this request at all (it is then excluded, not failed later)."""
    if isinstance(body, PriceRequest) and body.acknowledgement and se_version == "1.0":
        return "meter_capability: SE 1.0 meters carry no price acknowledgement (Price Control is SE 1.1)"
    if isinstance(body, PriceRequest) and body.block_period is not None and se_version == "1.0":
        return "meter_capability: SE 1.0 meters carry no block periods (PublishBlockPeriod is SE 1.1)"
    return None


def _start(body_start: datetime | None, now: datetime, errors: list[FieldError]) -> datetime:
    if body_start is None:
        return now
    if body_start.tzinfo is None:
        errors.append(FieldError("start", "naive_time", "give a time zone (e.g. Z)",
                                 body_start.isoformat()))
        return now
    # A few seconds of clock skew between caller and gateway are not "the past".
    if body_start < now - timedelta(seconds=30):
        errors.append(FieldError("start", "start_in_past",
                                 f"{body_start.isoformat()} is in the past (now {now.isoformat()})",
                                 body_start.isoformat()))
    return body_start


def _duration(minutes: int, limit: int, errors: list[FieldError]) -> int:
    """`minutes`, or the limit when over it (an error is recorded; the command is not sent)."""
    limit = min(limit, SE_MAX_MINUTES)
    if minutes > limit:
        errors.append(FieldError("duration_minutes", "duration_over_limit",
                                 f"{minutes} minutes is over the limit of {limit} minutes", minutes))
        return limit
    return minutes


def _utc_start(body_start: datetime | None, start: datetime) -> int:
    return 0 if body_start is None else utc_from_datetime(start)


def build_text(body: TextRequest, limits: Iterable[TextLimit], now: datetime, cfg: PipelineConfig,
               errors: list[FieldError]) -> Command:
    """`limits`: the text limit of every (route, SE version) among the targets
    (`ams_adapters.text_limit.text_limit`); the text must fit the smallest."""
    start = _start(body.start, now, errors)
    minutes = _duration(body.duration_minutes, cfg.max_text_minutes, errors)
    over = over_text_limit(body.text, limits)
    if over is not None:
        size, limit = over
        excess = size - limit.limit
        errors.append(FieldError(
            "text", "text_too_long",
            f"{size} UTF-8 bytes is over the limit of {limit.limit} bytes {limit.describe()} by "
            f"{excess} byte{'' if excess == 1 else 's'}", size, limit=limit.limit))
    control = (IMPORTANCE[body.importance] << 2) | (0x80 if body.confirmation_required else 0)
    fields = {"message_id": 0, "message_control": control, "start_time": _utc_start(body.start, start),
              "duration_in_minutes": body.duration_minutes, "message": body.text}
    return Command(ClusterId.MESSAGING, "display_message", fields, start, start + timedelta(minutes=minutes))


def build_price(body: PriceRequest, now: datetime, cfg: PipelineConfig,
                errors: list[FieldError]) -> Command:
    start = _start(body.start, now, errors)
    minutes = _duration(body.duration_minutes, cfg.max_price_minutes, errors)
    price, digits = 0, 0
    try:
        price, digits = decimal_to_price(body.price, body.trailing_digits)
    except EncodeError as exc:
        errors.append(FieldError("price", "price_out_of_range", f"{exc.limit}", str(body.price)))
    if body.number_of_tiers and body.tier > body.number_of_tiers:
        errors.append(FieldError("tier", "tier_over_number_of_tiers",
                                 f"tier {body.tier} is over number_of_tiers {body.number_of_tiers}",
                                 body.tier))
    if len(body.rate_label.encode("utf-8")) > 12:
        errors.append(FieldError("rate_label", "too_long", "at most 12 bytes", body.rate_label))
    fields = {
        "provider_id": body.provider_id, "rate_label": body.rate_label, "issuer_event_id": 0,
        "current_time": utc_from_datetime(now), "unit_of_measure": body.unit_of_measure,
        "currency": body.currency, "price_trailing_digit": digits, "price_tier": body.tier,
        "number_of_price_tiers": body.number_of_tiers, "register_tier": body.tier,
        "start_time": _utc_start(body.start, start), "duration_in_minutes": body.duration_minutes,
        "price": price, "price_control": 0x01 if body.acknowledgement else 0x00,
    }
    if body.block_period is not None:  # SE 1.1 PublishPrice field 18 (SE 1.0 targets are excluded)
        fields["number_of_block_thresholds"] = min(body.block_period.number_of_block_thresholds,
                                                   MAX_BLOCK_THRESHOLDS)
    return Command(ClusterId.PRICE, "publish_price", fields, start, start + timedelta(minutes=minutes))


MAX_BLOCK_THRESHOLDS = 15  # the nibble of SE 1.1 PublishBlockPeriod and the Block1..15 Threshold attributes
MAX_BLOCK_PERIOD_MINUTES = 0xFFFFFF  # uint24 Block Period Duration
TARIFF_TYPE = {"delivered": 0, "received": 1, "both": 2}


def build_block_period(body: PriceRequest, price_start: datetime, now: datetime,
                       errors: list[FieldError]) -> Command | None:
    """The PublishBlockPeriod that goes with a price, or None when the price has none. One field
    set serves both layouts: the SE 1.1 encoder ignores the SE 1.2 fields (duration type, tariff
    type, resolution) and the SE 1.2 encoder ignores the 1.1 tiers/thresholds nibbles."""
    block = body.block_period
    if block is None:
        return None
    if block.start is not None and block.start.tzinfo is None:
        errors.append(FieldError("block_period.start", "naive_time", "give a time zone (e.g. Z)",
                                 block.start.isoformat()))
    elif block.start is not None and block.start < now - timedelta(seconds=30):
        errors.append(FieldError("block_period.start", "start_in_past",
                                 f"{block.start.isoformat()} is in the past (now {now.isoformat()})",
                                 block.start.isoformat()))
    start = price_start if block.start is None or block.start.tzinfo is None else block.start
    if block.duration_minutes > MAX_BLOCK_PERIOD_MINUTES:
        errors.append(FieldError("block_period.duration_minutes", "duration_over_limit",
                                 f"{block.duration_minutes} minutes is over the SE limit of "
                                 f"{MAX_BLOCK_PERIOD_MINUTES} minutes (uint24)", block.duration_minutes))
    if block.number_of_block_thresholds > MAX_BLOCK_THRESHOLDS:
        errors.append(FieldError("block_period.number_of_block_thresholds", "too_many_block_thresholds",
                                 f"{block.number_of_block_thresholds} is over the SE limit of "
                                 f"{MAX_BLOCK_THRESHOLDS} block thresholds", block.number_of_block_thresholds))
    control = (0x01 if body.acknowledgement else 0) | (0x02 if block.repeating else 0)
    fields = {
        "provider_id": body.provider_id, "issuer_event_id": 0,
        "block_period_start_time": 0 if block.start is None and body.start is None else utc_from_datetime(start),
        "block_period_duration": min(block.duration_minutes, MAX_BLOCK_PERIOD_MINUTES),
        "number_of_price_tiers": body.number_of_tiers,
        "number_of_block_thresholds": min(block.number_of_block_thresholds, MAX_BLOCK_THRESHOLDS),
        "block_period_control": control,
        "block_period_duration_type": 0x00,  # timebase minutes, control "start of timebase"
        "tariff_type": TARIFF_TYPE[block.tariff_type], "tariff_resolution_period": 0,
    }
    return Command(ClusterId.PRICE, "publish_block_period", fields, start,
                   start + timedelta(minutes=min(block.duration_minutes, MAX_BLOCK_PERIOD_MINUTES)))


def build_load_control(body: LoadControlRequest, now: datetime, cfg: PipelineConfig,
                       errors: list[FieldError]) -> Command:
    start = _start(body.start, now, errors)
    minutes = _duration(body.duration_minutes, cfg.max_load_control_minutes, errors)
    if body.device_classes & ~DEVICE_CLASS_BITS:
        errors.append(FieldError("device_classes", "unknown_device_class_bits",
                                 f"bits 0x{body.device_classes & ~DEVICE_CLASS_BITS:04x} are not SE "
                                 f"device classes (defined: 0x{DEVICE_CLASS_BITS:04x})",
                                 body.device_classes))
    fields: dict[str, Any] = {
        "issuer_event_id": 0, "device_class": body.device_classes,
        "utility_enrollment_group": body.utility_enrollment_group,
        "start_time": _utc_start(body.start, start), "duration_in_minutes": body.duration_minutes,
        "criticality_level": body.criticality,
        "event_control": (0x01 if body.randomize_start else 0) | (0x02 if body.randomize_end else 0),
    }
    for side in ("cooling", "heating"):
        offset = getattr(body, f"{side}_offset_c")
        set_point = getattr(body, f"{side}_set_point_c")
        if offset is not None and set_point is not None:
            errors.append(FieldError(f"{side}_set_point_c", "set_point_and_offset",
                                     f"give {side}_offset_c or {side}_set_point_c, not both",
                                     str(set_point)))
            continue
        try:
            if offset is not None:
                fields[f"{side}_temperature_offset"] = offset_from_celsius(offset, f"{side}_offset_c")
            if set_point is not None:
                fields[f"{side}_temperature_set_point"] = set_point_from_celsius(
                    set_point, f"{side}_set_point_c")
        except EncodeError as exc:
            errors.append(FieldError(exc.field, "out_of_range", str(exc.limit), str(exc.value)))
    if body.average_load_adjustment_percent is not None:
        fields["average_load_adjustment_percentage"] = body.average_load_adjustment_percent
    if body.duty_cycle_percent is not None:
        fields["duty_cycle"] = body.duty_cycle_percent
    return Command(ClusterId.DRLC, "load_control_event", fields, start, start + timedelta(minutes=minutes))


def with_se_id(command: Command, se_id: int) -> Command:
    key = "message_id" if command.command in ("display_message", "cancel_message") else "issuer_event_id"
    return Command(command.cluster_id, command.command, {**command.fields, key: se_id},
                   command.starts_at, command.ends_at)


def cancel_text_command(se_id: int, now: datetime, expires: datetime) -> Command:
    return Command(ClusterId.MESSAGING, "cancel_message", {"message_id": se_id, "message_control": 0},
                   now, expires)


def cancel_lce_command(se_id: int, device_class: int, ueg: int, effective: datetime | None,  # noqa: PLR0917
                       randomize_end: bool, now: datetime, expires: datetime) -> Command:
    fields = {"issuer_event_id": se_id, "device_class": device_class,
              "utility_enrollment_group": ueg, "cancel_control": 0x01 if randomize_end else 0x00,
              "effective_time": 0 if effective is None else utc_from_datetime(effective)}
    return Command(ClusterId.DRLC, "cancel_load_control_event", fields, now, expires)
