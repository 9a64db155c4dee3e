"""The electric meter as a node on a HAN whose ESI is the gateway's own coordinator (the radio
route): a Metering (0x0702) server on an SE endpoint that answers, in real ZCL bytes, Read
Attributes with the simulated meter's Metering attributes (`SimMeter.metering_attributes`) and
GetProfile with its interval data (`SimMeter.profile`) — the same numbers the simulated and
head-end routes read from that meter. It has the emulator's device interface
(simulators/ncp/han.py `EmulatedDevice`).

`supports_profile=False` is a meter without GetProfile (before SE 1.1): it answers the command
with a Default Response UNSUP_CLUSTER_COMMAND, as a ZCL server does for a command it lacks.

GetProfile / GetProfileResponse are laid out with zigpy's Metering command schemas (the zigbee_se
codec has no Metering commands); Read Attributes with the zigbee_se codec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zigpy.zcl import foundation
from zigpy.zcl.clusters.smartenergy import GetProfileResponseSchema, Metering

from simulators.meter import SimMeter
from zigbee_se import DecodeError, decode_frame, encode_frame
from zigbee_se.esi import read_records

METERING = 0x0702
GET_PROFILE = 0x00
UNSUP_CLUSTER_COMMAND = 0x81
PERIOD_15_MIN = 3  # ProfileIntervalPeriod
Y2K = 946_684_800  # ZigBee UTCTime counts seconds from 2000-01-01


class MeteringNode:
    """The meter on the HAN (a router, SE Metering device 0x0501)."""

    endpoint = 1
    profile_id = 0x0109
    device_type = 0x0501  # SE metering device
    input_clusters = [METERING]  # noqa: RUF012 - a descriptor, read by the emulator
    output_clusters = [0x000A]  # noqa: RUF012 - it reads the ESI's time
    node_type = "router"

    def __init__(self, meter: SimMeter, eui64: str, install_code: str | None, *,
                 supports_profile: bool = True) -> None:
        self.meter = meter
        self.eui64 = eui64
        self.install_code = install_code
        self.supports_profile = supports_profile
        self.answering = True  # False: the meter hears but does not answer (a dark meter)
        self.heard: list[tuple[int, bytes]] = []
        self._uplink: Callable[[int, bytes], Any] | None = None

    def attach(self, uplink: Callable[[int, bytes], Any]) -> None:
        self._uplink = uplink

    def on_joined(self) -> None:
        pass

    def deliver(self, cluster_id: int, zcl_frame: bytes) -> None:
        self.heard.append((cluster_id, zcl_frame))
        if cluster_id != METERING or not self.answering or self._uplink is None:
            return
        header, payload = foundation.ZCLHeader.deserialize(zcl_frame)
        if header.frame_control.is_cluster and header.command_id == GET_PROFILE:
            self._uplink(METERING, self._get_profile(int(header.tsn), payload))
            return
        try:
            frame = decode_frame(METERING, zcl_frame)
        except DecodeError:
            return
        if frame.command == "read_attributes":
            records = read_records(self.meter.metering_attributes(), frame.fields["attribute_ids"])
            self._uplink(METERING, encode_frame(METERING, "read_attributes_response", {"records": records},
                                                tsn=frame.tsn, disable_default_response=True))

    def _get_profile(self, tsn: int, payload: bytes) -> bytes:
        if not self.supports_profile:
            header = foundation.ZCLHeader.general(tsn, foundation.GeneralCommand.Default_Response,
                                                  direction=foundation.Direction.Server_to_Client)
            header.frame_control = header.frame_control.replace(disable_default_response=1)
            body = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Default_Response].schema(
                command_id=GET_PROFILE, status=foundation.Status(UNSUP_CLUSTER_COMMAND))
            return bytes(header.serialize() + body.serialize())
        request, _rest = Metering.ServerCommandDefs.get_profile.schema.deserialize(payload)
        end = int(request.end_time)
        answer = self.meter.profile(int(request.interval_channel), end + Y2K if end else 0,
                                    int(request.number_of_periods))
        header = foundation.ZCLHeader.cluster(tsn, GET_PROFILE, direction=foundation.Direction.Server_to_Client)
        header.frame_control = header.frame_control.replace(disable_default_response=1)
        body = GetProfileResponseSchema(
            end_time=answer.end_time - Y2K, status=answer.status,
            profile_interval_period=PERIOD_15_MIN, number_of_periods_delivered=len(answer.intervals),
            intervals=list(answer.intervals))
        return bytes(header.serialize() + body.serialize())
