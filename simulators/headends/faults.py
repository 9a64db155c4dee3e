"""Fault injection for the head-end emulators: set at construction (config) or changed at run
time (the attributes are plain and read on every request/notification)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from simulators.errors import SimulatorError


@dataclass(slots=True)
class Faults:
    error_rate: float = 0.0
    """Share of requests answered with a transient head-end error (not recorded: a retry is new)."""
    timeout_rate: float = 0.0
    """Share of requests carried out whose synchronous answer is withheld (the client times out)."""
    disconnect_rate: float = 0.0
    """Share of requests after which the connection is cut before the answer (binary transport;
    the other transports get their disconnects from ``FaultProxy``)."""
    busy_rate: float = 0.0
    """Share of requests refused as busy, with a retry-after."""
    drop_callback_rate: float = 0.0
    duplicate_callback_rate: float = 0.0
    late_callback_rate: float = 0.0
    late_callback_s: float = 1.0
    late_kinds: tuple[str, ...] = ()
    """Notification kinds the lateness applies to (empty: all); ('delivered',) makes a device's
    answer overtake the delivery report (out of order)."""
    unreachable_rate: float = 0.0
    bad_read_rate: float = 0.0
    """Share of interval reads answered with a garbled value (negative Wh): the adapter must refuse
    the answer by field, value and limit."""
    """Share of delivery attempts that find the meter unreachable (RF mesh / cellular loss)."""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Faults:
        names = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key == "late_kinds":
                continue
            if key not in names:
                raise SimulatorError("faults." + key, value, f"one of {sorted(names)}")
            if not isinstance(value, int | float) or value < 0 or (key.endswith("_rate") and value > 1):
                raise SimulatorError("faults." + key, value, "a rate in 0..1 (or seconds >= 0)")
        faults = cls()
        for k, v in data.items():
            setattr(faults, k, tuple(v) if k == "late_kinds" else float(v))
        return faults

    @classmethod
    def uniform(cls, rate: float) -> Faults:
        """Every fault at ``rate`` (the soak test's 30 %)."""
        share = rate / 4
        return cls(error_rate=share, timeout_rate=share / 2, busy_rate=share / 2, disconnect_rate=share / 2,
                   drop_callback_rate=share, duplicate_callback_rate=share, late_callback_rate=share,
                   late_callback_s=0.5, unreachable_rate=share)
