"""``SimField``: a thin in-process interface over a set of simulated meters, keyed by ESI ID.

The gateway's test route, the head-end emulators and the coordinator emulator sit on this: they
address a meter by ESI ID, hand it ZCL frames with plain addressing and subscribe to what comes
back (``RelayedFrame``, ``HanEvent``, ``Reachability``). Meters may be created lazily by a factory
(the fleet), so a field of a million premises costs memory only for those touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from simulators.clock import TimerClock
from simulators.errors import SimulatorError
from simulators.meter import Address, MeterEvent, SimMeter, Upstream

MeterFactory = Callable[[str], SimMeter | None]


class SimField:
    def __init__(self, clock: TimerClock, factory: MeterFactory | None = None) -> None:
        self.clock = clock
        self._meters: dict[str, SimMeter] = {}
        self._factory = factory
        self._subscribers: list[Upstream] = []

    # ----------------------------------------------------------------- meters
    def add_meter(self, meter: SimMeter) -> SimMeter:
        if meter.esi_id in self._meters:
            raise SimulatorError("esi_id", meter.esi_id, "already in this field")
        meter.upstream = self._publish
        self._meters[meter.esi_id] = meter
        return meter

    def meter(self, esi_id: str) -> SimMeter:
        """The meter with this ESI ID, materialized on first use if the field has a factory."""
        m = self._meters.get(esi_id)
        if m is None:
            made = self._factory(esi_id) if self._factory is not None else None
            if made is None:
                raise SimulatorError("esi_id", esi_id, "no such meter in this field")
            m = self.add_meter(made)
        return m

    def __contains__(self, esi_id: object) -> bool:
        return esi_id in self._meters

    def materialized(self) -> Iterator[SimMeter]:
        return iter(self._meters.values())

    def __len__(self) -> int:
        return len(self._meters)

    # ----------------------------------------------------------------- upstream
    def subscribe(self, callback: Upstream) -> Callable[[], None]:
        """Receive every meter's events; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _publish(self, event: MeterEvent) -> None:
        for cb in self._subscribers:
            cb(event)

    # ----------------------------------------------------------------- commands (bytes only)
    def send(self, esi_id: str, address: Address, cluster_id: int, zcl_frame: bytes) -> int:
        return self.meter(esi_id).send(address, cluster_id, zcl_frame)

    def send_many(self, esi_ids: Iterable[str], address: Address, cluster_id: int,
                  zcl_frame: bytes) -> int:
        return sum(self.meter(e).send(address, cluster_id, zcl_frame) for e in esi_ids)

    def initialize_han(self, esi_id: str) -> None:
        self.meter(esi_id).initialize_han()

    def provision_device(self, esi_id: str, eui64: bytes, install_code: bytes | None = None, *,
                         link_key: bytes | None = None, join_window_s: float = 86_400.0) -> None:
        self.meter(esi_id).provision_device(eui64, install_code, link_key=link_key,
                                            join_window_s=join_window_s)

    def delete_device(self, esi_id: str, eui64: bytes) -> None:
        self.meter(esi_id).delete_device(eui64)

    def clear_devices(self, esi_id: str) -> None:
        self.meter(esi_id).clear_devices()

    def decommission_han(self, esi_id: str) -> None:
        self.meter(esi_id).decommission_han()

    def set_reachable(self, esi_id: str, reachable: bool) -> None:
        self.meter(esi_id).set_reachable(reachable)
