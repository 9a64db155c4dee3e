"""Conversions between unix seconds (the simulators' clock) and SE UTCTime (seconds since 2000)."""

from __future__ import annotations

# Seconds from 1970-01-01Z to 2000-01-01Z (SE_FRAMES.md §1.5). Kept here as a plain constant so the
# hot paths of a 100k-meter fleet do not build datetimes.
SE_EPOCH_UNIX = 946_684_800
UTC_INVALID = 0xFFFFFFFF


def to_utc(unix: float) -> int:
    """Unix seconds -> SE UTCTime; never 0 (0 means "now" in SE commands)."""
    return max(1, int(unix) - SE_EPOCH_UNIX)


def from_utc(utc: int) -> float:
    """SE UTCTime -> unix seconds."""
    return float(utc + SE_EPOCH_UNIX)
