"""The route factories behind `routes.kind = "simulated"` and `"simulated_remote"` (entry points
`hangw.routes`): `hangw serve` looks them up by name and calls them with the `[routes]` section."""

from __future__ import annotations

import time

from ams_adapters.contract import Route
from gateway.pipeline.config import RoutesConfig
from sandbox.simfield import ScaledClock, build_field, premises
from sandbox.simulated_route import RemoteSimulatedRoute, SimulatedRoute


def simulated(config: RoutesConfig) -> Route:
    """An in-process simulated field (built on the running loop: its timers are scheduled there)."""
    field, _devices = build_field(ScaledClock(config.simulated_speed), premises(config.simulated_premises_per_tdsp))
    return SimulatedRoute(field, now=time.time)


def simulated_remote(config: RoutesConfig) -> Route:
    """A simulated field in another process (`hangw sim-field` at `routes.url`)."""
    return RemoteSimulatedRoute(config.url)
