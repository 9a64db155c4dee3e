"""Conversions callers need between wire values and real quantities: UTCTime, prices with trailing
digits, DRLC temperatures."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from zigbee_se.errors import EncodeError

ZIGBEE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ZIGBEE_EPOCH_UNIX = 946_684_800
UTC_NOW = 0
"""Start/effective time 0 in a command means "now" (not in GetScheduled*, where it means "from the start")."""
UTC_INVALID = 0xFFFFFFFF
UNTIL_CHANGED = 0xFFFF
"""Duration in minutes 0xffff: until changed (DisplayMessage, PublishPrice)."""


def utc_from_datetime(moment: datetime) -> int:
    """An aware datetime -> UTCTime (whole seconds since 2000-01-01T00:00:00Z)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise EncodeError("time", moment, "an aware datetime (with a time zone)")
    seconds = int((moment - ZIGBEE_EPOCH).total_seconds() // 1)
    if not 0 <= seconds < UTC_INVALID:
        raise EncodeError("time", moment.isoformat(), "between 2000-01-01T00:00:00Z and 2136-02-07T06:28:14Z")
    return seconds


def utc_from_unix(seconds: float) -> int:
    value = int(seconds) - ZIGBEE_EPOCH_UNIX
    if not 0 <= value < UTC_INVALID:
        raise EncodeError("time", seconds, "a unix time between 2000-01-01 and 2136-02-07")
    return value


def unix_from_utc(value: int) -> int:
    return value + ZIGBEE_EPOCH_UNIX


def datetime_from_utc(value: int) -> datetime | None:
    """UTCTime -> aware datetime; None for 0xffffffff (invalid). 0 is returned as the epoch: whether
    it means "now" depends on the field, which the caller knows."""
    if value == UTC_INVALID:
        return None
    if not 0 <= value < UTC_INVALID:
        raise EncodeError("time", value, "a UTCTime in 0..0xfffffffe")
    return datetime.fromtimestamp(ZIGBEE_EPOCH_UNIX + value, tz=UTC)


def price_to_decimal(value: int, trailing_digits: int) -> Decimal:
    """Price 12345 with 3 trailing digits -> Decimal('12.345')."""
    return Decimal(value).scaleb(-trailing_digits)


def decimal_to_price(
    amount: Decimal | str | int, trailing_digits: int | None = None, *, field: str = "price"
) -> tuple[int, int]:
    """A price -> (integer, trailing digits) for PublishPrice, exactly, or an EncodeError.

    With `trailing_digits` None the fewest digits that represent the amount exactly are used."""
    try:
        dec = Decimal(amount)
    except (InvalidOperation, ValueError, TypeError):
        raise EncodeError(field, amount, "a decimal number") from None
    if not dec.is_finite() or dec < 0:
        raise EncodeError(field, amount, "a finite, non-negative decimal")
    if trailing_digits is None:
        exponent = dec.normalize().as_tuple().exponent
        assert isinstance(exponent, int)
        trailing_digits = max(0, -exponent)
    if not 0 <= trailing_digits <= 15:
        raise EncodeError(field, amount, "at most 15 digits after the decimal point (4 bits)")
    scaled = dec.scaleb(trailing_digits)
    if scaled != scaled.to_integral_value():
        raise EncodeError(field, amount, f"exact with {trailing_digits} trailing digits")
    integer = int(scaled)
    if integer > 0xFFFFFFFF:
        limit = price_to_decimal(0xFFFFFFFF, trailing_digits)
        raise EncodeError(field, amount, f"at most {limit} with {trailing_digits} trailing digits (uint32)")
    return integer, trailing_digits


def set_point_from_celsius(celsius: Decimal | float | str, field: str = "set_point") -> int:
    """°C -> DRLC set point in 0.01 °C (int16), exactly."""
    hundredths = _scaled(celsius, 2, field)
    if not -27315 <= hundredths <= 32767:
        raise EncodeError(field, celsius, "-273.15..327.67 °C")
    return hundredths


def celsius_from_set_point(value: int) -> Decimal | None:
    return None if value == -0x8000 else Decimal(value).scaleb(-2)


def offset_from_celsius(celsius: Decimal | float | str, field: str = "offset") -> int:
    """°C -> DRLC temperature offset in 0.1 °C (uint8, 0xff = not used), exactly."""
    tenths = _scaled(celsius, 1, field)
    if not 0 <= tenths <= 254:
        raise EncodeError(field, celsius, "0..25.4 °C (0.1 °C steps)")
    return tenths


def celsius_from_offset(value: int) -> Decimal | None:
    return None if value == 0xFF else Decimal(value).scaleb(-1)


def _scaled(value: Decimal | float | str, digits: int, field: str) -> int:
    try:
        dec = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise EncodeError(field, value, "a number of °C") from None
    if not dec.is_finite():
        raise EncodeError(field, value, "a finite number of °C")
    scaled = dec.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise EncodeError(field, value, f"a multiple of {Decimal(1).scaleb(-digits)} °C")
    return int(scaled)
