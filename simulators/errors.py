"""Typed errors of the simulators: each names the field, the value and the limit it broke."""

from __future__ import annotations

from typing import Any


class SimulatorError(ValueError):
    """Bad input to a simulator (API call, profile file, provisioning request)."""

    def __init__(self, field: str, value: Any, limit: str) -> None:
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"{field}={value!r}: {limit}")


class FirmwareProfileError(SimulatorError):
    """A firmware profile file is missing a field or has a value out of range."""

    def __init__(self, path: str, field: str, value: Any, limit: str) -> None:
        self.path = path
        super().__init__(field, value, limit)
        self.args = (f"{path}: {field}={value!r}: {limit}",)


class ProvisioningError(SimulatorError):
    """A HAN operation the meter refuses (not initialized, device limit, unknown device...)."""


class NotSupportedError(SimulatorError):
    """Something the simulators deliberately do not model."""
