"""Price client (SE 0x0700) as Silicon Labs' price-client plugin behaves (SE_BEHAVIOUR.md §4.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.device import DUPLICATE_EXISTS, FAILURE, INSUFFICIENT_SPACE, PRICE
from simulators.se_time import from_utc
from zigbee_se import DecodedFrame

if TYPE_CHECKING:
    from simulators.device import SimDevice

UNTIL_CHANGED = 0xFFFF


class PriceEntry:
    __slots__ = ("end", "fields", "issuer_event_id", "start")

    def __init__(self, fields: dict[str, Any], start: float, end: float | None) -> None:
        self.fields = fields
        self.issuer_event_id: int = fields["issuer_event_id"]
        self.start = start
        self.end = end

    def active_at(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


class PriceClient:
    __slots__ = ("acks", "block_periods", "device", "prices")

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.prices: list[PriceEntry] = []
        self.block_periods: dict[tuple[int, int], dict[str, Any]] | None = None
        self.acks = 0

    def current(self) -> PriceEntry | None:
        now = self.device.local_now()
        for p in self.prices:
            if p.active_at(now):
                return p
        return None

    def scheduled(self) -> list[PriceEntry]:
        now = self.device.local_now()
        return sorted((p for p in self.prices if p.start > now), key=lambda p: p.start)

    def _block_period(self, frame: DecodedFrame) -> None:
        """SE 1.1 PublishBlockPeriod (SE_BEHAVIOUR.md §4.5): Silicon Labs stores it by (provider,
        issuer event id) and answers nothing; NXP answers like PublishPrice."""
        dev = self.device
        f = frame.fields
        if self.block_periods is None:
            self.block_periods = {}
        self.block_periods[(f["provider_id"], f["issuer_event_id"])] = f
        if dev.profile.drlc_variant != "nxp":
            return
        if f.get("block_period_control", 0) & 0x01:
            dev.send(PRICE, "price_acknowledgement", {
                "provider_id": f["provider_id"], "issuer_event_id": f["issuer_event_id"],
                "price_ack_time": dev.local_utc(), "control": f["block_period_control"],
            }, tsn=frame.tsn)
        else:
            dev._ok(PRICE, frame)

    def handle(self, frame: DecodedFrame) -> bool:
        if frame.command == "publish_block_period":
            self._block_period(frame)
            return True
        if frame.command != "publish_price":
            return False
        dev = self.device
        f = frame.fields
        now = dev.local_now()
        start = now if f["start_time"] == 0 else from_utc(f["start_time"])
        dur = f["duration_in_minutes"]
        end = None if dur == UNTIL_CHANGED else start + dur * 60
        self.prices = [p for p in self.prices if p.end is None or p.end > now]
        if end is not None and end <= now:
            dev._error(PRICE, frame, FAILURE)
            return True
        new = PriceEntry(f, start, end)
        for p in self.prices:
            if p.issuer_event_id == new.issuer_event_id:
                dev._error(PRICE, frame, DUPLICATE_EXISTS)
                return True
        keep: list[PriceEntry] = []
        for p in self.prices:
            overlaps = (p.end is None or p.end > start) and (end is None or p.start < end)
            if not overlaps:
                keep.append(p)
            elif p.issuer_event_id > new.issuer_event_id:
                dev._error(PRICE, frame, FAILURE)  # an older price never replaces a newer one
                return True
            elif p.active_at(now) and start > now:
                p.end = start  # truncated to end where the newer price starts
                keep.append(p)
        if len(keep) >= dev.profile.price_table_size:
            if all(p.start < start for p in keep):
                dev._error(PRICE, frame, INSUFFICIENT_SPACE)
                return True
            keep.remove(max(keep, key=lambda p: p.start))
        keep.append(new)
        keep.sort(key=lambda p: p.start)
        self.prices = keep
        control = f.get("price_control")
        wants_ack = control is not None and control != 0xFF and control & 0x01
        if (wants_ack and dev.profile.se_version != "1.0"
                and not dev.profile.quirks.ignore_price_ack_bit):
            self.acks += 1
            dev.send(PRICE, "price_acknowledgement", {
                "provider_id": f["provider_id"], "issuer_event_id": f["issuer_event_id"],
                "price_ack_time": dev.local_utc(), "control": control,
            }, tsn=frame.tsn)
        else:
            dev._ok(PRICE, frame)
        return True

    def get_current_price(self, rx_on_when_idle: bool = True) -> None:
        self.device.send(PRICE, "get_current_price", {"command_options": int(rx_on_when_idle)})

    def get_scheduled_prices(self, start_time: int = 0, number_of_events: int = 0) -> None:
        self.device.send(PRICE, "get_scheduled_prices",
                         {"start_time": start_time, "number_of_events": number_of_events})
