"""In-home display: messaging and price client that also shows the meter's figures."""

from __future__ import annotations

from typing import Any

from simulators.client_device import ClientDevice
from simulators.device import METERING
from zigbee_se import DecodedFrame

# CurrentSummationDelivered, InstantaneousDemand, Multiplier, Divisor (SE_FRAMES.md §5).
METERING_ATTRIBUTES = [0x0000, 0x0400, 0x0301, 0x0302]


class InHomeDisplay(ClientDevice):
    __slots__ = ("metering",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.metering: dict[int, Any] = {}

    def initial_requests(self) -> None:
        super().initial_requests()
        if self.profile.has("metering") and self.profile.metering_poll_s > 0:
            self.read_meter()

    def read_meter(self) -> None:
        self.send(METERING, "read_attributes", {"attribute_ids": METERING_ATTRIBUTES})

    def _poll(self) -> None:
        if self.attached:
            self.read_meter()

    def handle(self, cluster_id: int, frame: DecodedFrame) -> bool:
        if cluster_id == METERING and frame.command == "read_attributes_response":
            for r in frame.fields.get("records", []):
                if r.get("status", 0) == 0:
                    self.metering[r["attribute_id"]] = r["value"]
            if self.profile.metering_poll_s > 0:
                self.clock.call_later(self.profile.metering_poll_s, self._poll)
            return True
        return super().handle(cluster_id, frame)

    @property
    def shown_demand_w(self) -> float | None:
        """Instantaneous demand as the display shows it (value x multiplier / divisor, in kW)."""
        if 0x0400 not in self.metering:
            return None
        mult = float(self.metering.get(0x0301, 1) or 1)
        div = float(self.metering.get(0x0302, 1) or 1)
        return float(self.metering[0x0400]) * mult / div * 1000.0
