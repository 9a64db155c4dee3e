"""Errors of the local-radio route."""

from __future__ import annotations


class RadioError(Exception):
    """Base class for errors of the local-radio route."""


class CoordinatorUnavailable(RadioError):
    """The coordinator is not connected (unplugged, reset, socket down) or not started yet."""


class CbkeNotSupported(RadioError):
    """SE Certificate-Based Key Establishment (cluster 0x0800) is not implemented.

    Devices are admitted with install-code link keys only. Adding CBKE needs NCP firmware with
    the ECC library and a certificate, a Key Establishment server on the ESI endpoint and a trust
    center policy that refuses well-known-key joins; see docs/field-technician.md.
    """

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "SE key establishment (CBKE, cluster 0x0800) is not supported by the local-radio "
            "route: provision the device with its install code instead" + (f" ({detail})" if detail else "")
        )
