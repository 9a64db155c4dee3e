"""``ClientDevice``: a SimDevice running the SE client clusters its firmware profile lists.

Messaging, Price and DRLC clients are components switched on by ``profile.clusters``; the
thermostat, in-home display and load control device subclass this and add what they do with an
event (set points, relays, load).
"""

from __future__ import annotations

from typing import Any

from simulators.attribute_writes import response_records, write_records
from simulators.clock import TimerClock
from simulators.device import (
    DRLC,
    MESSAGING,
    PRICE,
    UNSUPPORTED_ATTRIBUTE,
    UNSUPPORTED_CLUSTER,
    SimDevice,
)
from simulators.drlc_client import ATTRIBUTES as DRLC_ATTRIBUTES
from simulators.drlc_client import DrlcClient, LoadControlEvent
from simulators.drlc_rules import RULES
from simulators.messaging_client import MessagingClient
from simulators.price_client import PriceClient
from simulators.profiles import FirmwareProfile
from zigbee_se import DecodedFrame, Direction, encode_frame

WRITES = ("write_attributes", "write_attributes_undivided", "write_attributes_no_response")


class ClientDevice(SimDevice):
    __slots__ = ("drlc", "messaging", "price")

    def __init__(self, eui64: bytes, install_code: bytes, profile: FirmwareProfile, clock: TimerClock,
                 endpoint: int = 1) -> None:
        super().__init__(eui64, install_code, profile, clock, endpoint)
        self.messaging = MessagingClient(self) if profile.has("messaging") else None
        self.price = PriceClient(self) if profile.has("price") else None
        self.drlc: DrlcClient | None = None
        if profile.has("drlc"):
            self.drlc = DrlcClient(
                self, RULES[profile.drlc_variant], device_class=profile.device_class,
                ueg=profile.utility_enrollment_group,
                start_rand_min=profile.start_randomization_minutes,
                duration_rand_min=profile.duration_randomization_minutes,
                table_size=profile.event_table_size,
                refuse_mandatory=profile.quirks.refuse_mandatory_opt_out)

    # ------------------------------------------------------------------ registration
    def initial_requests(self) -> None:
        """After joining: GetLastMessage, GetCurrentPrice, GetScheduledEvents (§2.2)."""
        if self.messaging is not None:
            self.messaging.get_last_message()
        if self.price is not None:
            self.price.get_current_price()
        if self.drlc is not None:
            self.send(DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 0})

    # ------------------------------------------------------------------ dispatch
    def handle(self, cluster_id: int, frame: DecodedFrame) -> bool:
        if cluster_id == MESSAGING and self.messaging is not None:
            return self.messaging.handle(frame)
        if cluster_id == PRICE and self.price is not None:
            return self.price.handle(frame)
        if cluster_id == DRLC and self.drlc is not None:
            return self._handle_drlc(frame)
        return False

    def _handle_drlc(self, frame: DecodedFrame) -> bool:
        assert self.drlc is not None
        cmd = frame.command
        if cmd == "load_control_event":
            self.drlc.on_load_control_event(frame.fields, frame.tsn)
        elif cmd == "cancel_load_control_event":
            self.drlc.on_cancel(frame.fields, frame.tsn)
        elif cmd == "cancel_all_load_control_events":
            self.drlc.on_cancel_all(frame.fields, frame.tsn, frame.disable_default_response)
        elif cmd in ("read_attributes", *WRITES) and frame.direction != Direction.SERVER_TO_CLIENT:
            # Client->server addresses the DRLC *server*'s attributes: this device has none.
            self._error(DRLC, frame, UNSUPPORTED_CLUSTER)
        elif cmd == "read_attributes":
            self._read_drlc_attributes(frame)
        elif cmd in WRITES:
            self._write_drlc_attributes(frame)
        else:
            return False
        return True

    def _read_drlc_attributes(self, frame: DecodedFrame) -> None:
        """The DRLC client attributes (SE_FRAMES.md §3.7), e.g. read by an ESI or a gateway."""
        assert self.drlc is not None
        values = self.drlc.attribute_values()
        records: list[dict[str, Any]] = [
            {"attribute_id": a, "status": 0, "value": values[a]} if a in values
            else {"attribute_id": a, "status": UNSUPPORTED_ATTRIBUTE}
            for a in frame.fields["attribute_ids"]]
        self.send(DRLC, "read_attributes_response", {"records": records}, tsn=frame.tsn,
                  disable_default_response=True, direction=Direction.CLIENT_TO_SERVER)

    def _write_drlc_attributes(self, frame: DecodedFrame) -> None:
        """Write Attributes (0x02), Undivided (0x03) or No Response (0x05) to the DRLC client
        attributes (simulators/attribute_writes.py); a written UEG, device class or randomization
        changes what the device does with the next event."""
        assert self.drlc is not None
        failures = write_records(
            frame.fields["records"], DRLC_ATTRIBUTES, self.profile.quirks.read_only_attributes,
            self.drlc.set_attribute, undivided=frame.command == "write_attributes_undivided")
        if frame.command == "write_attributes_no_response":
            return
        self.send(DRLC, "write_attributes_response", {"records": response_records(failures)},
                  tsn=frame.tsn, disable_default_response=True,
                  direction=Direction.CLIENT_TO_SERVER)

    # ------------------------------------------------------------------ DrlcHost
    def send_res(self, fields: dict[str, Any], tsn: int | None) -> None:
        exegin = self.profile.drlc_variant == "exegin"
        # signature=None: Exegin sends no signature bytes at all (18-byte payload).
        self.send_frame(DRLC, self._encode_res(fields, tsn, exegin))

    def _encode_res(self, fields: dict[str, Any], tsn: int | None, ddr: bool) -> bytes:
        return encode_frame(DRLC, "report_event_status", fields, se_version=self.se_version,
                            tsn=self.next_tsn() if tsn is None else tsn,
                            disable_default_response=ddr)

    def send_default_response_drlc(self, command_id: int, status: int, tsn: int) -> None:
        self.send_default_response(DRLC, command_id, status, tsn)

    def apply_event(self, event: LoadControlEvent | None) -> None:
        """Subclasses change set points / relays / load. ``None`` = back to normal."""

    def applied_values(self) -> tuple[int, int, int, int]:
        return (-0x8000, -0x8000, -128, 0xFF)

    # ------------------------------------------------------------------ resident actions
    def opt_out(self, issuer_event_id: int) -> bool:
        return self.drlc is not None and self.drlc.set_opt(
            issuer_event_id, False, self.profile.se_version)

    def opt_in(self, issuer_event_id: int) -> bool:
        return self.drlc is not None and self.drlc.set_opt(
            issuer_event_id, True, self.profile.se_version)

    def confirm_message(self, yes: bool = True, response: str = "") -> bool:
        return self.messaging is not None and self.messaging.confirm(yes, response)
