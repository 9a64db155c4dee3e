"""Price cluster 0x0700 (SE_FRAMES.md §2). Sources: Wireshark packet-zbee-zcl-se.c, Silicon Labs AF
API, TI Z-Stack SE 1.1, NXP JN-UG-3132."""

from __future__ import annotations

from zigbee_se.clusters import ClusterId
from zigbee_se.schema import CommandDef, Direction, Field, NibblePair, nibble
from zigbee_se.types import CharString, enum8, map8, uint8, uint16, uint24, uint32, utc_time
from zigbee_se.versions import SEVersion

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
V10, V11, V12 = SEVersion.V1_0, SEVersion.V1_1, SEVersion.V1_2
PRICE = ClusterId.PRICE

RATE_LABEL_MAX = 12

PUBLISH_PRICE = CommandDef(
    PRICE, S2C, 0x00, "publish_price",
    (
        Field("provider_id", uint32),
        Field("rate_label", CharString(RATE_LABEL_MAX)),
        Field("issuer_event_id", uint32, doc="newer = higher"),
        Field("current_time", utc_time),
        Field("unit_of_measure", enum8, doc="Metering UnitofMeasure enum; 0x00 = kWh"),
        Field("currency", uint16, doc="ISO 4217 numeric; 840 = USD"),
        NibblePair(nibble("price_trailing_digit"), nibble("price_tier")),
        NibblePair(nibble("number_of_price_tiers"), nibble("register_tier")),
        Field("start_time", utc_time, doc="0 = now"),
        Field("duration_in_minutes", uint16, doc="0xffff = until changed"),
        Field("price", uint32),
        Field("price_ratio", uint8, optional=True, sentinel=0xFF, max=0xFE, doc="x0.1"),
        Field("generation_price", uint32, optional=True, sentinel=0xFFFFFFFF, max=0xFFFFFFFE),
        Field("generation_price_ratio", uint8, optional=True, sentinel=0xFF, max=0xFE),
        # Attributed to SE 1.1 (TI's SE 1.1 code has them; the SE 1.0-era payload ends at
        # generation_price_ratio). Sending a 1.0 meter fewer trailing bytes is the safer mistake.
        Field("alternate_cost_delivered", uint32, since=V11, optional=True,
              sentinel=0xFFFFFFFF, max=0xFFFFFFFE),
        Field("alternate_cost_unit", enum8, since=V11, optional=True, sentinel=0xFF, max=0xFE,
              doc="0x01 = kg of CO2 per unit of measure"),
        Field("alternate_cost_trailing_digit", map8, since=V11, optional=True, sentinel=0xFF,
              mask=0xF0, doc="digits right of the decimal point, in the high nibble"),
        Field("number_of_block_thresholds", uint8, since=V11, optional=True, default=0, max=15),
        Field("price_control", map8, since=V11, optional=True, default=0, mask=0x03,
              doc="bit 0 = Price Acknowledgement required; bit 1 = total tiers exceed 15"),
        Field("number_of_generation_tiers", uint8, since=V12, optional=True, default=0),
        Field("generation_tier", enum8, since=V12, optional=True, default=0),
        Field("extended_number_of_price_tiers", enum8, since=V12, optional=True, default=0),
        Field("extended_price_tier", enum8, since=V12, optional=True, default=0),
        Field("extended_register_tier", enum8, since=V12, optional=True, default=0),
    ),
)

# The SE 1.1 and SE 1.2 PublishBlockPeriod disagree after the duration (SE_FRAMES.md §2.4); they are
# two definitions of one command id, chosen by the target version.
PUBLISH_BLOCK_PERIOD_1_1 = CommandDef(
    PRICE, S2C, 0x01, "publish_block_period",
    (
        Field("provider_id", uint32),
        Field("issuer_event_id", uint32),
        Field("block_period_start_time", utc_time, doc="0 = now"),
        Field("block_period_duration", uint24, doc="minutes"),
        NibblePair(nibble("number_of_price_tiers"), nibble("number_of_block_thresholds")),
        Field("block_period_control", map8, default=0, mask=0x03,
              doc="bit 0 = price acknowledgement required; bit 1 = repeating block"),
    ),
    since=V11,
)

PUBLISH_BLOCK_PERIOD_1_2 = CommandDef(
    PRICE, S2C, 0x01, "publish_block_period",
    (
        Field("provider_id", uint32),
        Field("issuer_event_id", uint32),
        Field("block_period_start_time", utc_time, doc="0 = now"),
        Field("block_period_duration", uint24, doc="in units of the duration type's timebase"),
        Field("block_period_control", map8, default=0, mask=0x03,
              doc="bit 0 = price acknowledgement required; bit 1 = repeating block"),
        Field("block_period_duration_type", map8, default=0, mask=0x33,
              doc="low nibble timebase 0 min/1 day/2 week/3 month; high nibble control 0..2"),
        Field("tariff_type", map8, default=0, mask=0x0F, doc="low nibble 0 delivered/1 received/2 both"),
        Field("tariff_resolution_period", enum8, default=0),
    ),
    since=V12,
)

GET_CURRENT_PRICE = CommandDef(
    PRICE, C2S, 0x00, "get_current_price",
    (Field("command_options", map8, default=0, mask=0x01, doc="bit 0 = requestor Rx On When Idle"),),
)

GET_SCHEDULED_PRICES = CommandDef(
    PRICE, C2S, 0x01, "get_scheduled_prices",
    (
        Field("start_time", utc_time, doc="0 = from the beginning (not 'now' here)"),
        Field("number_of_events", uint8, doc="0 = all"),
    ),
)

PRICE_ACKNOWLEDGEMENT = CommandDef(
    PRICE, C2S, 0x02, "price_acknowledgement",
    (
        Field("provider_id", uint32),
        Field("issuer_event_id", uint32),
        Field("price_ack_time", utc_time),
        Field("control", map8, doc="echo of the PublishPrice Price Control"),
    ),
    since=V11,
)

GET_BLOCK_PERIODS = CommandDef(
    PRICE, C2S, 0x03, "get_block_periods",
    (
        Field("start_time", utc_time),
        Field("number_of_events", uint8),
        Field("tariff_type", map8, since=V12, optional=True, default=0, mask=0x0F),
    ),
    since=V11,
)

COMMANDS = (
    PUBLISH_PRICE,
    PUBLISH_BLOCK_PERIOD_1_1,
    PUBLISH_BLOCK_PERIOD_1_2,
    GET_CURRENT_PRICE,
    GET_SCHEDULED_PRICES,
    PRICE_ACKNOWLEDGEMENT,
    GET_BLOCK_PERIODS,
)
