"""An EZSP (EmberZNet 7.3/7.4, protocol 13) network co-processor emulator for bellows."""

from simulators.ncp.emulator import NcpEmulator
from simulators.ncp.han import EmulatedDevice, JoinResult
from simulators.ncp.link import LineFaults
from simulators.ncp.profile import CoordinatorProfile, ProfileError, load_profile

__all__ = [
    "CoordinatorProfile",
    "EmulatedDevice",
    "JoinResult",
    "LineFaults",
    "NcpEmulator",
    "ProfileError",
    "load_profile",
]
