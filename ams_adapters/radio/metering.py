"""Reading the meter over the HAN (issue 16; ENERGY_DATA.md §3.5, SE_FRAMES.md §5): the electric
meter is a node of the HAN the gateway's coordinator (the ESI) runs, with a Metering (0x0702)
server on an SE endpoint. The gateway reads its attributes — CurrentSummationDelivered 0x0000,
CurrentSummationReceived 0x0001, InstantaneousDemand 0x0400, and UnitofMeasure / Multiplier /
Divisor 0x0300–0x0302 that scale them — and asks GetProfile (SE 1.1+) for 15-minute interval data.

Requests go out on the SE profile like every ESI frame; the answer is matched by (device, cluster,
ZCL transaction number) in the packet hook (session_core `_settle_answer`). Frames: Read
Attributes with the zigbee_se codec, GetProfile / GetProfileResponse with zigpy's Metering command
schemas (zigbee_se has no Metering commands; zigpy defines them, so they are not written by hand).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import zigpy.exceptions
import zigpy.types as zt
from zigpy.zcl import foundation
from zigpy.zcl.clusters.smartenergy import GetProfileResponseSchema, Metering

from ams_adapters.radio.session_core import SessionCore
from ams_adapters.usage import Channel, MeterRead, Quality, UsageNotSupported, UsageRead, UsageUnavailable
from zigbee_se import SE_PROFILE_ID, DecodeError, decode_frame, encode_frame

METERING = 0x0702
GET_PROFILE = 0x00
DEFAULT_RESPONSE = 0x0B
UNSUP_CLUSTER_COMMAND = 0x81
SUCCESS = 0x00
SUMMATION_DELIVERED, SUMMATION_RECEIVED = 0x0000, 0x0001
UNIT_OF_MEASURE, MULTIPLIER, DIVISOR = 0x0300, 0x0301, 0x0302
INSTANTANEOUS_DEMAND = 0x0400
REGISTER_ATTRIBUTES = [SUMMATION_DELIVERED, SUMMATION_RECEIVED, INSTANTANEOUS_DEMAND, UNIT_OF_MEASURE,
                       MULTIPLIER, DIVISOR]
KWH = 0x00  # UnitofMeasure: kWh (electric), binary
PERIOD_S = {1: 3600, 2: 1800, 3: 900, 4: 600, 5: 450, 6: 300, 7: 150, 8: 60}  # ProfileIntervalPeriod
# Periods asked per GetProfile: the answer (10 bytes + 3 a period) stays within one APS frame
# with APS encryption (73 bytes: the route sends and takes no fragmented frames).
PERIODS_PER_REQUEST = 20
Y2K = 946_684_800  # ZigBee UTCTime counts seconds from 2000-01-01 00:00 UTC
ANSWER_TIMEOUT_S = 10.0
PROFILE_STATUS = {1: "undefined interval channel", 2: "interval channel not supported", 3: "invalid end time",
                  4: "more periods requested than can be returned", 5: "no intervals available"}
ROUTE = "radio"


@dataclass(frozen=True)
class Profile:
    status: int
    end_time: int  # unix seconds: the end of the most recent period delivered
    period_s: int
    intervals: list[int]  # raw values, the most recent first


def scale_wh(raw: int, attrs: Mapping[int, Any]) -> int:
    """A summation or demand in Wh (W): the raw value × Multiplier / Divisor is kWh (kW)."""
    unit = int(attrs.get(UNIT_OF_MEASURE, KWH))
    if unit != KWH:
        raise UsageNotSupported(ROUTE, f"the meter reports UnitofMeasure {unit:#04x}, not kWh (0x00)")
    multiplier = int(attrs.get(MULTIPLIER, 1)) or 1  # 0 is "not used" (SE: treat as 1)
    divisor = int(attrs.get(DIVISOR, 1)) or 1
    return round(raw * multiplier * 1000 / divisor)


def meter_read_of(attrs: Mapping[int, Any], read_at: int) -> MeterRead:
    """The register from a Read Attributes Response's values (attribute id -> value)."""
    if SUMMATION_DELIVERED not in attrs:
        raise UsageUnavailable("the meter did not report CurrentSummationDelivered (0x0000)")
    received = attrs.get(SUMMATION_RECEIVED)
    demand = attrs.get(INSTANTANEOUS_DEMAND)
    return MeterRead(read_at, scale_wh(int(attrs[SUMMATION_DELIVERED]), attrs),
                     None if received is None else scale_wh(int(received), attrs),
                     None if demand is None else scale_wh(int(demand), attrs))


class MeterReading(SessionCore):
    """The coordinator session's requests to the HAN's meter (combined in session.py)."""

    def metering_devices(self) -> list[str]:
        """Joined devices (not the coordinator) with a Metering server on an SE endpoint."""
        app = self.app
        if app is None:
            return []
        own = app.state.node_info.ieee
        found = []
        for device in list(app.devices.values()):
            if device.ieee == own:
                continue
            if any(ep_id and ep.profile_id == SE_PROFILE_ID and METERING in ep.in_clusters
                   for ep_id, ep in device.endpoints.items()):
                found.append(str(device.ieee))
        return sorted(found)

    answer_timeout_s = ANSWER_TIMEOUT_S  # how long the meter has to answer one request

    async def _ask(self, eui64: str, build: Callable[[int], bytes]) -> bytes:
        """Send the frame `build(tsn)` to the meter's Metering server; its answer (same TSN)."""
        timeout = self.answer_timeout_s
        app = self.app
        if app is None or not self.reachable:
            raise UsageUnavailable("the coordinator is not connected", retry_after_s=self.config.reconnect_max_s)
        device = app.devices.get(zt.EUI64.convert(eui64))
        if device is None:
            raise UsageUnavailable(f"meter {eui64} is not on this HAN")
        endpoint = next((int(ep_id) for ep_id, ep in device.endpoints.items()
                         if ep_id and ep.profile_id == SE_PROFILE_ID and METERING in ep.in_clusters), 1)
        tsn = int(app.get_sequence())
        frame = build(tsn)
        key = (eui64, METERING, tsn)
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._awaiting[key] = answer
        try:
            await app.request(device, SE_PROFILE_ID, METERING, self.config.se_endpoint, endpoint, tsn, frame,
                              expect_reply=False, ask_for_ack=True, aps_encryption=True)
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            raise UsageUnavailable(f"meter {eui64} did not answer within {timeout:g} s") from None
        except zigpy.exceptions.DeliveryError as exc:
            raise UsageUnavailable(f"meter {eui64} was not reached: {exc}") from None
        finally:
            self._awaiting.pop(key, None)

    async def read_metering(self, eui64: str, attribute_ids: list[int]) -> dict[int, Any]:
        """The attributes the meter reported (unsupported ones left out)."""
        reply = await self._ask(eui64, lambda tsn: encode_frame(METERING, "read_attributes",
                                                                {"attribute_ids": attribute_ids}, tsn=tsn))
        try:
            frame = decode_frame(METERING, reply)
        except DecodeError as exc:
            raise UsageUnavailable(f"meter {eui64} answered an undecodable frame: {exc}") from None
        if frame.command != "read_attributes_response":
            raise UsageUnavailable(f"meter {eui64} answered {frame.command} to Read Attributes")
        return {r["attribute_id"]: r["value"] for r in frame.fields["records"] if r.get("status") == SUCCESS}

    async def get_profile(self, eui64: str, channel: int, end_time: int, periods: int) -> Profile:
        """GetProfile (SE 1.1+): `periods` intervals of `channel` ending at `end_time` (unix s)."""
        def build(tsn: int) -> bytes:
            header = foundation.ZCLHeader.cluster(tsn, GET_PROFILE)
            body = Metering.ServerCommandDefs.get_profile.schema(
                interval_channel=channel, end_time=max(0, end_time - Y2K), number_of_periods=periods)
            return bytes(header.serialize() + body.serialize())
        reply = await self._ask(eui64, build)
        header, payload = foundation.ZCLHeader.deserialize(reply)
        if not header.frame_control.is_cluster:
            if header.command_id == DEFAULT_RESPONSE and len(payload) >= 2 and payload[1] == UNSUP_CLUSTER_COMMAND:
                raise UsageNotSupported(ROUTE, f"meter {eui64} does not support GetProfile (SE 1.1+ Metering)")
            raise UsageUnavailable(f"meter {eui64} answered GetProfile with general command "
                                   f"{int(header.command_id):#04x} {payload.hex()}")
        response, _rest = GetProfileResponseSchema.deserialize(payload)
        period = PERIOD_S.get(int(response.profile_interval_period))
        if period is None:
            raise UsageUnavailable(f"meter {eui64}: ProfileIntervalPeriod {int(response.profile_interval_period)} "
                                   "is not a period this route reads")
        end = int(response.end_time) + Y2K if int(response.end_time) else 0
        return Profile(int(response.status), end, period, [int(v) for v in response.intervals])


async def read_profile_usage(session: MeterReading, eui64: str, start: int, end: int) -> list[UsageRead]:
    """The meter's 15-minute intervals starting in [start, end) through GetProfile: channel 0
    (delivered: consumption) and 1 (received: generation; a meter without it says so and has
    none), PERIODS_PER_REQUEST periods a request, walking back from `end`."""
    attrs = await session.read_metering(eui64, [UNIT_OF_MEASURE, MULTIPLIER, DIVISOR])
    out: list[UsageRead] = []
    for channel, name in ((0, Channel.CONSUMPTION), (1, Channel.GENERATION)):
        at = end // 900 * 900
        while at > start:
            periods = min(PERIODS_PER_REQUEST, math.ceil((at - start) / 900))
            profile = await session.get_profile(eui64, channel, at, periods)
            if profile.status in (2, 5):  # this channel is not metered / nothing (more) recorded
                break
            if profile.status != SUCCESS:
                raise UsageUnavailable(f"meter {eui64}: GetProfile channel {channel}: "
                                       f"{PROFILE_STATUS.get(profile.status, profile.status)}")
            if profile.period_s != 900:
                raise UsageNotSupported(ROUTE, f"meter {eui64} records {profile.period_s} s periods, not 15 minutes")
            for i, raw in enumerate(profile.intervals):
                begins = profile.end_time - (i + 1) * 900
                if start <= begins < end:
                    out.append(UsageRead(begins, 900, name, scale_wh(raw, attrs), Quality.ACTUAL))
            if not profile.intervals:
                break
            earlier = profile.end_time - len(profile.intervals) * 900
            if earlier >= at:  # no progress (a meter answering past what was asked): stop
                break
            at = earlier
    return sorted(out, key=lambda r: (r.start, r.channel.value))
