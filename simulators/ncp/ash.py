"""The NCP side of ASH (UG101): bellows' own host-side protocol turned around.

bellows' `AshProtocol` already implements framing, byte stuffing, CRC, data randomization,
ACK/NAK, retransmission with an adaptive timeout and the reject condition, and none of that is
host-specific: ASH is symmetric except for reset (the host sends RST, the NCP answers RSTACK) and
the ERROR frame. So the emulator subclasses it and only overrides those two behaviours, instead of
writing a second ASH implementation that could disagree with the one it is meant to exercise.
"""

from __future__ import annotations

import logging
from typing import Protocol

import bellows.types as t
from bellows.ash import (
    AshProtocol,
    ErrorFrame,
    NcpFailure,
    RStackFrame,
    RstFrame,
)

LOGGER = logging.getLogger(__name__)

# RSTACK and ERROR frames carry ASH version 2 (UG101 §3); bellows rejects anything else.
ASH_VERSION = 0x02


class EzspLayer(Protocol):
    """What the NCP's ASH layer hands frames to (the EZSP command processor)."""

    def connection_made(self, ash: NcpAshProtocol) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def host_reset(self) -> None: ...


class _Adapter:
    """Maps bellows' host-side callbacks (reset_received, error_received…) onto an EzspLayer."""

    def __init__(self, layer: EzspLayer) -> None:
        self.layer = layer
        self.ash: NcpAshProtocol | None = None

    def connection_made(self, ash: NcpAshProtocol) -> None:
        self.ash = ash
        self.layer.connection_made(ash)

    def connection_lost(self, exc: Exception | None) -> None:
        self.layer.connection_lost(exc)

    def eof_received(self) -> None:
        return None

    def data_received(self, data: bytes) -> None:
        self.layer.data_received(data)

    def reset_received(self, code: t.NcpResetCode) -> None:
        # The NCP never receives RSTACK; a host sending one is confused. Ignore like firmware.
        LOGGER.debug("NCP ignoring RSTACK from host: %r", code)

    def error_received(self, code: t.NcpResetCode) -> None:
        LOGGER.debug("NCP ASH entered the failed state: %r", code)


class NcpAshProtocol(AshProtocol):  # type: ignore[misc]
    """ASH as the network co-processor speaks it."""

    def __init__(self, layer: EzspLayer) -> None:
        super().__init__(_Adapter(layer))
        self.resets_received = 0

    def rst_frame_received(self, frame: RstFrame) -> None:
        """Host asked for a reset: drop all ASH state, tell EZSP, answer RSTACK (UG101 §2.3)."""
        super().rst_frame_received(frame)
        self.resets_received += 1
        self._restart_sequence()
        self._ezsp_protocol.layer.host_reset()
        self.send_rstack(t.NcpResetCode.RESET_SOFTWARE)

    def _restart_sequence(self) -> None:
        self._tx_seq = 0
        self._rx_seq = 0
        self._clear_reject_condition()
        self._cancel_pending_data_frames(NcpFailure(code=t.NcpResetCode.RESET_SOFTWARE))
        self._buffer.clear()

    def send_rstack(self, code: t.NcpResetCode) -> None:
        """Announce a (re)start: after a host RST, on power-up, or an unexpected NCP reset."""
        self._restart_sequence()
        self._write_frame(RStackFrame(version=ASH_VERSION, reset_code=code))

    def send_error(self, code: t.NcpResetCode) -> None:
        """Enter the FAILED state as firmware does after too many ACK timeouts."""
        self._write_frame(ErrorFrame(version=ASH_VERSION, reset_code=code))

    def _enter_failed_state(self, reset_code: t.NcpResetCode) -> None:
        super()._enter_failed_state(reset_code)
        if self._transport is not None and not self._transport.is_closing():
            self.send_error(reset_code)
