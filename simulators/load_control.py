"""Load control device (water heater, pool pump): relay on/off, duty cycle, load adjustment."""

from __future__ import annotations

from simulators.client_device import ClientDevice
from simulators.drlc_client import NOT_USED_DUTY, NOT_USED_LOAD, LoadControlEvent


class LoadControlDevice(ClientDevice):
    __slots__ = ("duty_cycle", "load_adjustment", "relay_on")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.relay_on = True
        self.duty_cycle: int | None = None
        self.load_adjustment: int | None = None
        self.set_load(self.profile.nominal_load_w)

    def apply_event(self, event: LoadControlEvent | None) -> None:
        nominal = self.profile.nominal_load_w
        self.duty_cycle = None
        self.load_adjustment = None
        if event is None:
            self.relay_on = True
            self.set_load(nominal)
        elif event.avg_load != NOT_USED_LOAD:
            self.relay_on = True
            self.load_adjustment = event.avg_load
            self.set_load(nominal * max(0.0, 1 + event.avg_load / 100.0))
        elif event.duty_cycle != NOT_USED_DUTY:
            # "Off state precedes on state"; we report the average draw over the cycle.
            self.relay_on = event.duty_cycle > 0
            self.duty_cycle = event.duty_cycle
            self.set_load(nominal * event.duty_cycle / 100.0)
        else:
            self.relay_on = False  # plain curtailment: switch the load off
            self.set_load(0.0)

    def applied_values(self) -> tuple[int, int, int, int]:
        avg = self.load_adjustment if self.load_adjustment is not None else -128
        duty = self.duty_cycle if self.duty_cycle is not None else 0xFF
        return (-0x8000, -0x8000, avg, duty)
