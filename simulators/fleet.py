"""A fleet of simulated premises: N meters with their devices, materialized lazily in one process.

Memory per premise is kept small on purpose (``__slots__`` everywhere, one shared profile object
per firmware, no per-meter asyncio task, one timer heap on the clock), so 100,000 meters with two
devices each fit in well under 2 GB. Devices are derived from the meter index: EUI-64 and install
code are deterministic, so a test can recompute them without keeping them in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from simulators.addressing import install_code_with_crc
from simulators.client_device import ClientDevice
from simulators.clock import TimerClock
from simulators.factory import make_device
from simulators.field import SimField
from simulators.meter import SimMeter
from simulators.profiles import FirmwareProfile, load_profiles

# Two devices per premise; real fleets mix firmware, so the pairs rotate through these.
DEFAULT_MIX: tuple[tuple[str, ...], ...] = (
    ("silabs-ihd", "silabs-pct"),
    ("silabs-ihd", "nxp-pct"),
    ("budget-ihd-lossy", "silabs-pct"),
    ("silabs-ihd", "exegin-water-heater"),
    ("silabs-ihd", "freescale-pct-se10"),
    ("silabs-ihd", "drifting-pct"),
    ("silabs-ihd", "silabs-pool-pump"),
)
ONCOR_PREFIX = "1044372"
DEVICE_OUI = 0x001BC5_0000000000  # EUI-64s of simulated devices start with this OUI


class Fleet(SimField):
    """``meters`` premises with ESI IDs ``<prefix><index>``, the index zero-padded to ``esi_length``
    digits in all (default: a 10-digit index, 17 digits with a 7-digit prefix, Oncor style; a
    CenterPoint fleet passes ``esi_length=22``)."""

    def __init__(self, meters: int, clock: TimerClock, *, mix: Sequence[Sequence[str]] = DEFAULT_MIX,
                 profiles: dict[str, FirmwareProfile] | None = None,
                 esi_prefix: str = ONCOR_PREFIX, se_version: str = "1.1", esi_length: int | None = None) -> None:
        super().__init__(clock, self._make_meter)
        self.size = meters
        self.esi_prefix = esi_prefix
        self.esi_length = len(esi_prefix) + 10 if esi_length is None else esi_length
        self._index_digits = self.esi_length - len(esi_prefix)
        if meters > 10 ** max(self._index_digits, 0):
            raise ValueError(f"esi_prefix: {esi_prefix!r} leaves {self._index_digits} digits of a "
                             f"{self.esi_length}-digit ESI ID for premise numbers, too few for {meters} premises")
        self.se_version = se_version
        all_profiles = profiles if profiles is not None else load_profiles()
        self.mix = tuple(tuple(all_profiles[p] for p in pair) for pair in mix)
        self._premise_devices: dict[str, tuple[ClientDevice, ...]] = {}

    # ----------------------------------------------------------------- identities
    def esi_id(self, index: int) -> str:
        return f"{self.esi_prefix}{index:0{self._index_digits}d}"

    def index_of(self, esi_id: str) -> int | None:
        if not esi_id.startswith(self.esi_prefix) or len(esi_id) != self.esi_length:
            return None
        i = int(esi_id[len(self.esi_prefix):])
        return i if 0 <= i < self.size else None

    def esi_ids(self) -> Iterator[str]:
        return (self.esi_id(i) for i in range(self.size))

    def device_identity(self, index: int, slot: int) -> tuple[bytes, bytes]:
        """(EUI-64, install code) of device ``slot`` at premise ``index``; deterministic."""
        n = index * 8 + slot
        eui = (DEVICE_OUI + n).to_bytes(8, "little")
        code = install_code_with_crc(hashlib.blake2b(eui, digest_size=16).digest())
        return eui, code

    def profiles_at(self, index: int) -> tuple[FirmwareProfile, ...]:
        return self.mix[index % len(self.mix)]

    # ----------------------------------------------------------------- lazy premises
    def _make_meter(self, esi_id: str) -> SimMeter | None:
        index = self.index_of(esi_id)
        if index is None:
            return None
        meter_eui = (0x0007810000000000 + index).to_bytes(8, "little")
        meter = SimMeter(esi_id, self.clock, eui64=meter_eui, se_version=self.se_version)
        devices = []
        for slot, profile in enumerate(self.profiles_at(index)):
            eui, code = self.device_identity(index, slot)
            devices.append(make_device(profile, eui, code, self.clock))
        self._premise_devices[esi_id] = tuple(devices)
        return meter

    def devices(self, esi_id: str) -> tuple[ClientDevice, ...]:
        """The devices installed at a premise (joined or not)."""
        self.meter(esi_id)
        return self._premise_devices[esi_id]

    def install(self, esi_id: str, join_window_s: float = 86_400.0) -> None:
        """Field technician's visit: HAN init, provision every device, power them on (join)."""
        meter = self.meter(esi_id)
        meter.initialize_han()
        for dev in self._premise_devices[esi_id]:
            meter.provision_device(dev.eui64, dev.install_code, join_window_s=join_window_s)
            meter.join(dev)
