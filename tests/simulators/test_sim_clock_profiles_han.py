"""Virtual clock, firmware profiles and the HAN provisioning state machine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulators.addressing import (
    eui64_from_str,
    eui64_str,
    install_code_with_crc,
    link_key_from_install_code,
)
from simulators.clock import RealClock, VirtualClock
from simulators.errors import FirmwareProfileError, ProvisioningError, SimulatorError
from simulators.han import HanProvisioning, JoinFailure, MeterDeviceStatus
from simulators.profiles import load_profile, load_profiles

SPEC_CODE = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")
SPEC_KEY = bytes.fromhex("66B6900981E1EE3CA4206B6B861C02BB")


def test_virtual_clock_runs_due_callbacks_in_time_then_schedule_order() -> None:
    clock = VirtualClock(start=1000.0)
    seen: list[tuple[str, float]] = []
    clock.call_at(1010, lambda: seen.append(("b", clock.now())))
    clock.call_later(5, lambda: seen.append(("a", clock.now())))
    clock.call_at(1010, lambda: seen.append(("c", clock.now())))
    h = clock.call_at(1007, lambda: seen.append(("x", clock.now())))
    h.cancel()
    assert clock.advance(9) == 1
    assert seen == [("a", 1005.0)]
    assert clock.now() == 1009.0
    clock.advance(1)
    assert seen == [("a", 1005.0), ("b", 1010.0), ("c", 1010.0)]


def test_virtual_clock_callbacks_can_schedule_and_past_times_run_now() -> None:
    clock = VirtualClock(start=0.0)
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.now())
        if len(seen) < 3:
            clock.call_later(60, tick)

    clock.call_at(-50, tick)  # in the past: runs at the current time, not before it
    clock.run_until_idle()
    assert seen == [0.0, 60.0, 120.0]
    with pytest.raises(ValueError, match="seconds=-1"):
        clock.advance(-1)


def test_virtual_clock_is_deterministic_for_a_seed() -> None:
    a, b = VirtualClock(seed=7), VirtualClock(seed=7)
    assert [a.rng.random() for _ in range(3)] == [b.rng.random() for _ in range(3)]


async def test_real_clock_fires_on_the_asyncio_loop() -> None:
    clock = RealClock()
    fired = asyncio.Event()
    t0 = clock.now()
    clock.call_later(0.02, fired.set)
    await asyncio.wait_for(fired.wait(), 2)
    assert clock.now() - t0 >= 0.015
    fired.clear()
    clock.call_at(clock.now() + 0.01, fired.set)
    await asyncio.wait_for(fired.wait(), 2)


def test_profiles_load_and_cover_every_kind() -> None:
    profiles = load_profiles()
    assert len(profiles) >= 6
    assert {p.device_type for p in profiles.values()} == {"ihd", "pct", "load_control"}
    assert {p.drlc_variant for p in profiles.values()} >= {"spec", "silabs", "nxp", "exegin",
                                                           "freescale"}
    assert profiles["budget-ihd-lossy"].drlc_variant == "spec"  # the default: the SE rules
    assert profiles["silabs-pool-pump"].quirks.read_only_attributes == (0x0003,)
    assert profiles["budget-ihd-lossy"].quirks.drop_ratio == 0.2
    assert profiles["freescale-pct-se10"].quirks.reject_trailing_fields
    assert profiles["drifting-pct"].quirks.clock_drift_ppm == 2000.0
    for p in profiles.values():
        text = Path(p.source).read_text()
        assert text.startswith("#"), f"{p.source} must document what it models"


def test_bad_profile_names_field_value_and_limit(tmp_path: Path) -> None:
    base = (Path(load_profiles()["silabs-pct"].source)).read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(
        base.replace("start_randomization_minutes = 0", "start_randomization_minutes = 61"))
    with pytest.raises(FirmwareProfileError) as err:
        load_profile(bad)
    assert err.value.field == "start_randomization_minutes"
    assert err.value.value == 61
    assert "0..60" in err.value.limit
    bad.write_text(base.replace('drlc_variant = "silabs"', 'drlc_variant = "zboss"'))
    with pytest.raises(FirmwareProfileError, match="drlc_variant='zboss'"):
        load_profile(bad)
    bad.write_text(base + "\nread_only_attributes = [3, 70000]\n")  # lands in [quirks]
    with pytest.raises(FirmwareProfileError, match=r"quirks\.read_only_attributes=\[3, 70000\]"):
        load_profile(bad)
    bad.write_text(base + "\nbogus_quirk = 1\n")  # lands in [quirks]
    with pytest.raises(FirmwareProfileError, match=r"quirks\.bogus_quirk"):
        load_profile(bad)


def test_install_codes_and_eui64() -> None:
    assert link_key_from_install_code(SPEC_CODE) == SPEC_KEY
    assert install_code_with_crc(SPEC_CODE[:-2]) == SPEC_CODE
    with pytest.raises(SimulatorError) as err:
        link_key_from_install_code(SPEC_CODE[:-1] + b"\x00")
    assert err.value.field == "install_code"
    eui = eui64_from_str("00:0d:6f:00:0a:bc:de:f0")
    assert eui == bytes.fromhex("f0debc0a006f0d00")
    assert eui64_str(eui) == "00:0d:6f:00:0a:bc:de:f0"


def _eui(n: int) -> bytes:
    return n.to_bytes(8, "little")


def test_han_requires_initialization_and_enforces_limits() -> None:
    han = HanProvisioning()
    with pytest.raises(ProvisioningError, match="HAN initialization required first"):
        han.provision(_eui(1), install_code=SPEC_CODE, join_window_s=3600, now=0)
    han.initialize()
    for i in range(5):
        han.provision(_eui(i), install_code=SPEC_CODE, join_window_s=3600, now=0)
    with pytest.raises(ProvisioningError) as err:
        han.provision(_eui(9), install_code=SPEC_CODE, join_window_s=3600, now=0)
    assert err.value.field == "devices" and "at most 5" in err.value.limit
    with pytest.raises(SimulatorError, match="join_window_s"):
        han.provision(_eui(1), install_code=SPEC_CODE, join_window_s=31 * 86400, now=0)
    han.delete(_eui(0))
    with pytest.raises(ProvisioningError, match="not provisioned"):
        han.delete(_eui(0))
    assert len(han.clear()) == 4
    assert han.decommission() == []


def test_han_join_window_key_check_and_enhanced_load_control_limit() -> None:
    han = HanProvisioning(enhanced=True)
    han.initialize()
    other = install_code_with_crc(bytes(range(16)))
    other_key = link_key_from_install_code(other)
    han.provision(_eui(1), install_code=SPEC_CODE, join_window_s=60, now=0)
    assert han.first_contact(_eui(2), now=1) == JoinFailure.NOT_PROVISIONED
    assert han.first_contact(_eui(1), now=61) == JoinFailure.JOIN_WINDOW_EXPIRED
    han.provision(_eui(1), link_key=SPEC_KEY, join_window_s=60, now=100)
    assert han.first_contact(_eui(1), now=110) is None
    assert han.records[_eui(1)].status == MeterDeviceStatus.FIND_PENDING
    mismatch = han.complete_join(_eui(1), other_key, load_control=False)
    assert mismatch == JoinFailure.LINK_KEY_MISMATCH
    assert han.complete_join(_eui(1), SPEC_KEY, load_control=False) is None
    assert han.records[_eui(1)].status == MeterDeviceStatus.JOINED
    for i in range(10, 19):
        han.provision(_eui(i), install_code=other, join_window_s=60, now=100)
        assert han.first_contact(_eui(i), now=101) is None
        expected = None if i < 18 else JoinFailure.LOAD_CONTROL_LIMIT
        assert han.complete_join(_eui(i), other_key, load_control=True) == expected
    with pytest.raises(ProvisioningError, match="at most 10"):
        han.provision(_eui(30), install_code=other, join_window_s=60, now=100)
