"""The simulated field behind `routes.kind = "simulated"` (`hangw demo`, `hangw serve` for trying
the API, the tests): meters across the five TDSPs with devices of several firmware profiles,
installed and joined. Only the command line imports `simulators`, lazily; the gateway itself only
sees the route (`ams_adapters.simulated.SimulatedRoute`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (TDSP, ESI ID prefix, ESI ID length): DOMAIN.md's prefixes.
TDSPS = (
    ("oncor", "1044372", 17),
    ("centerpoint", "1008901", 22),
    ("aep_central", "1003278", 17),
    ("aep_north", "1020404", 17),
    ("tnmp", "1040051", 17),
)
# Device pairs per premise, rotating: several firmware profiles and SE versions.
MIX = (
    ("silabs-ihd", "silabs-pct"),
    ("silabs-ihd", "nxp-pct"),
    ("silabs-ihd", "exegin-water-heater"),
    ("budget-ihd-lossy", "silabs-pool-pump"),
    ("silabs-ihd", "freescale-pct-se10"),
)
SE_VERSIONS = ("1.1", "1.1", "1.2", "1.0")


@dataclass
class SimPremise:
    esi_id: str
    tdsp: str
    meter_number: str
    se_version: str
    profiles: tuple[str, ...]


def premises(per_tdsp: int) -> list[SimPremise]:
    out = []
    n = 0
    for tdsp, prefix, length in TDSPS:
        for i in range(per_tdsp):
            esi = prefix + str(i + 1).rjust(length - len(prefix), "0")
            out.append(SimPremise(esi, tdsp, f"SIM-{n + 1:05d}", SE_VERSIONS[n % len(SE_VERSIONS)],
                                  MIX[n % len(MIX)]))
            n += 1
    return out


def premises_csv(items: list[SimPremise], email: str) -> str:
    lines = ["esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter"]
    lines += [f"{p.esi_id},{p.meter_number},{email},Demo REP,residential,{p.se_version},no" for p in items]
    return "\n".join(lines) + "\n"


def build_field(clock: Any, items: list[SimPremise]) -> tuple[Any, dict[str, list[Any]]]:
    """A Field with one meter per premise and its devices provisioned and powered on (they join
    `join_time_s` later on `clock`). Returns the field and the devices by ESI ID."""
    from simulators.addressing import install_code_with_crc
    from simulators.factory import make_device
    from simulators.field import Field
    from simulators.meter import SimMeter
    from simulators.profiles import load_profiles

    profiles = load_profiles()
    field = Field(clock)
    devices: dict[str, list[Any]] = {}
    for n, p in enumerate(items):
        meter = field.add_meter(SimMeter(p.esi_id, clock, eui64=(0x0007810000000000 + n).to_bytes(8, "little"),
                                         se_version=p.se_version, join_time_s=0.5))
        meter.initialize_han()
        devices[p.esi_id] = []
        for slot, pid in enumerate(p.profiles):
            eui = (0x001BC50000000000 + n * 8 + slot).to_bytes(8, "little")
            code = install_code_with_crc(bytes([(n * 8 + slot) % 251 + 1]) * 16)
            dev = make_device(profiles[pid], eui, code, clock)
            meter.provision_device(eui, code, join_window_s=86_400)
            meter.join(dev)
            devices[p.esi_id].append(dev)
    return field, devices
