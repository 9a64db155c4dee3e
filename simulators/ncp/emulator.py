"""An emulated EZSP coordinator served over a pseudo-terminal or TCP, with fault injection.

emulator = NcpEmulator(load_profile("emberznet-7.4-mg24"))
path = await emulator.serve_pty()                 # bellows: {"device": {"path": path}}
host, port = await emulator.serve_tcp()           # bellows: socket://host:port
emulator.join(device)                             # a simulated HAN device joins (or not)
emulator.reset_ncp()                              # firmware resets mid-stream
await emulator.unplug(); await emulator.replug()  # the stick is pulled and plugged back
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import bellows.types as t

from simulators.ncp.ash import NcpAshProtocol
from simulators.ncp.ezsp import EzspNcp
from simulators.ncp.han import EmulatedDevice, JoinResult
from simulators.ncp.link import Line, LineFaults, PtyLine, TcpLine
from simulators.ncp.profile import CoordinatorProfile, load_profile
from simulators.ncp.state import Nvram

LOGGER = logging.getLogger(__name__)

# zigbeed announces itself with an RSTACK when a client connects; bellows waits up to 2 s for
# it on socket:// ports. A short delay lets bellows arm its wait before the frame arrives.
TCP_STARTUP_RSTACK_DELAY_S = 0.05


class NcpEmulator:
    def __init__(
        self,
        profile: CoordinatorProfile | None = None,
        *,
        faults: LineFaults | None = None,
        nvram: Nvram | None = None,
    ) -> None:
        self.profile = profile or load_profile()
        self.faults = faults or LineFaults()
        self.ncp = EzspNcp(self.profile, nvram)
        self.line: Line | None = None
        self.ash: NcpAshProtocol | None = None
        self._pty_link: Path | None = None
        self._server: asyncio.Server | None = None
        self._tcp_address: tuple[str, int] | None = None
        self._mode: str | None = None
        self.connections = 0  # hosts that opened the coordinator (TCP clients accepted, pty opens)

    # ------------------------------------------------------------------ serving
    def _attach(self, line: Line) -> NcpAshProtocol:
        if self.line is not None and self.line is not line:
            self.line.close()
        ash = NcpAshProtocol(self.ncp)
        self.line, self.ash = line, ash
        line.attach(ash)
        return ash

    async def serve_pty(self, link: Path | None = None) -> str:
        """Open a pseudo-terminal; returns the path a host opens (the symlink if given)."""
        self._mode, self._pty_link = "pty", link
        line = PtyLine(self.faults, link)
        self._attach(line)
        return line.path

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen like a network coordinator (zigbeed, an Ethernet/Wi-Fi stick)."""
        self._mode = "tcp"
        loop = asyncio.get_running_loop()

        def accept() -> TcpLine:
            line = TcpLine(self.faults)
            self.connections += 1
            ash = self._attach(line)
            # A new client means a freshly started NCP process, as with zigbeed.
            self.ncp.reboot()
            loop.call_later(TCP_STARTUP_RSTACK_DELAY_S, self._announce, ash)
            return line

        self._server = await loop.create_server(accept, host, port)
        sock = self._server.sockets[0].getsockname()
        self._tcp_address = (sock[0], sock[1])
        return self._tcp_address

    def _announce(self, ash: NcpAshProtocol) -> None:
        if ash is self.ash and self.line is not None and not self.line.is_closing():
            ash.send_rstack(t.NcpResetCode.RESET_POWER_ON)

    @property
    def path(self) -> str:
        """The device path for zigpy's config: a pty path or socket://host:port."""
        if self._mode == "tcp" and self._tcp_address is not None:
            return f"socket://{self._tcp_address[0]}:{self._tcp_address[1]}"
        if isinstance(self.line, PtyLine):
            return self.line.path
        raise RuntimeError("NcpEmulator is not serving: call serve_pty() or serve_tcp() first")

    # ------------------------------------------------------------------ faults
    def reset_ncp(self, code: t.NcpResetCode = t.NcpResetCode.RESET_WATCHDOG) -> None:
        """The firmware resets on its own (watchdog, brown-out): stack state is lost."""
        self.ncp.reboot()
        if self.ash is not None:
            self.ash.send_rstack(code)

    async def unplug(self) -> None:
        """Pull the stick / drop the socket: the host sees its port close."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.line is not None:
            self.line.close()
            self.line, self.ash = None, None
        self.ncp.reboot()  # power is gone with the USB cable

    async def replug(self) -> str:
        """Plug back in: same symlink path (pty) or same port (TCP)."""
        if self._mode == "tcp" and self._tcp_address is not None:
            host, port = self._tcp_address
            await self.serve_tcp(host, port)
        else:
            await self.serve_pty(self._pty_link)
        return self.path

    async def close(self) -> None:
        await self.unplug()
        self.ncp.close()
        if self._pty_link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._pty_link.unlink()

    # ------------------------------------------------------------------ the HAN
    def join(self, device: EmulatedDevice) -> JoinResult:
        """The device tries to join now (it succeeds only while joining is permitted)."""
        return self.ncp.join(device)

    def pair(self, device: EmulatedDevice) -> None:
        """Put a device in pairing mode: it joins the next time joining is permitted."""
        self.ncp.pairing.append(device)

    def leave(self, device: EmulatedDevice) -> bool:
        return self.ncp.leave(device)

    def set_reachable(self, device: EmulatedDevice, reachable: bool) -> None:
        self.ncp.set_reachable(device, reachable)
