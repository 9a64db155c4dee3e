"""Programmable communicating thermostat (PCT): a DRLC client that moves its set points."""

from __future__ import annotations

from simulators.client_device import ClientDevice
from simulators.drlc_client import NOT_USED_OFFSET, LoadControlEvent

NORMAL_COOLING = 2400  # 24.00 °C, in the 0.01 °C units of the LCE set points
NORMAL_HEATING = 2000  # 20.00 °C
NOT_USED_SP = -0x8000


class Thermostat(ClientDevice):
    """Cools by default; exposes the set points it holds (``cooling_set_point``...)."""

    __slots__ = ("cooling_set_point", "heating_set_point", "normal_cooling", "normal_heating")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.normal_cooling = NORMAL_COOLING
        self.normal_heating = NORMAL_HEATING
        self.cooling_set_point = NORMAL_COOLING
        self.heating_set_point = NORMAL_HEATING
        # Assume the compressor runs half the time at the normal set point.
        self.set_load(self.profile.nominal_load_w * 0.5)

    def apply_event(self, event: LoadControlEvent | None) -> None:
        nominal = self.profile.nominal_load_w
        if event is None:
            self.cooling_set_point = self.normal_cooling
            self.heating_set_point = self.normal_heating
            self.set_load(nominal * 0.5)
            return
        # Absolute set points win over offsets (offsets are 0.1 °C, set points 0.01 °C).
        if event.cooling_set_point != NOT_USED_SP:
            self.cooling_set_point = event.cooling_set_point
        elif event.cooling_offset != NOT_USED_OFFSET:
            self.cooling_set_point = self.normal_cooling + event.cooling_offset * 10
        if event.heating_set_point != NOT_USED_SP:
            self.heating_set_point = event.heating_set_point
        elif event.heating_offset != NOT_USED_OFFSET:
            self.heating_set_point = self.normal_heating - event.heating_offset * 10
        raised = (self.cooling_set_point - self.normal_cooling) / 100.0  # °C warmer
        if event.avg_load != -128:
            load = nominal * 0.5 * (1 + event.avg_load / 100.0)
        elif event.duty_cycle != 0xFF:
            load = nominal * min(0.5, event.duty_cycle / 100.0)
        elif raised > 0:
            # Each °C of set-back trims a fifth of the compressor's run time (simple, visible).
            load = nominal * 0.5 * max(0.0, 1 - 0.2 * raised)
        else:
            load = 0.0  # a bare curtailment: compressor off
        self.set_load(max(0.0, load))

    def applied_values(self) -> tuple[int, int, int, int]:
        """What NXP-style firmware reports: the set points it actually applied."""
        cool, heat = self.cooling_set_point, self.heating_set_point
        cool = cool if cool != self.normal_cooling else NOT_USED_SP
        heat = heat if heat != self.normal_heating else NOT_USED_SP
        return (cool, heat, -128, 0xFF)
