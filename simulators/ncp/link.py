"""The serial line between host and NCP: a pseudo-terminal or a TCP socket, with line shaping.

The shaping sits here, below ASH, so faults hit real bytes exactly as a bad cable or a busy USB
bridge would: the line can be paced at a baud rate (10 bits a byte: start, 8 data, stop), deliver
bytes one at a time, delay them, drop whole ASH frames or corrupt a byte in them, in either
direction. Everything is seeded so a failing test replays the same faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import random
import tty
from collections.abc import Callable
from pathlib import Path

LOGGER = logging.getLogger(__name__)

FLAG = 0x7E
BITS_PER_BYTE = 10


@dataclasses.dataclass
class LineFaults:
    """What the line does to the bytes crossing it. Rates are per ASH frame, 0.0 to 1.0."""

    baudrate: int | None = None  # pace both directions at this rate (None: as fast as possible)
    byte_by_byte: bool = False  # hand the bytes over one at a time
    delay_s: float = 0.0  # extra latency added to every chunk, both directions
    drop_to_host: float = 0.0  # drop whole frames written by the NCP
    drop_to_ncp: float = 0.0  # drop whole frames written by the host
    corrupt_to_host: float = 0.0  # flip one byte of a frame written by the NCP
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_to_host", "drop_to_ncp", "corrupt_to_host"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"LineFaults.{name}={value!r}: must be between 0.0 and 1.0")
        if self.baudrate is not None and self.baudrate <= 0:
            raise ValueError(f"LineFaults.baudrate={self.baudrate!r}: must be positive")


@dataclasses.dataclass
class LineCounters:
    bytes_to_host: int = 0
    bytes_to_ncp: int = 0
    frames_dropped: int = 0
    frames_corrupted: int = 0


class _Pacer:
    """Releases chunks in order, no earlier than the line could have carried them."""

    def __init__(self, faults: LineFaults, sink: Callable[[bytes], None]) -> None:
        self._faults = faults
        self._sink = sink
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._line_free_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def push(self, data: bytes) -> None:
        if not self._faults.baudrate and not self._faults.byte_by_byte and not self._faults.delay_s:
            self._sink(data)  # unshaped: no task hop, keeps the fast path fast
            return
        self._queue.put_nowait(data)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await self._queue.get()
            if self._faults.delay_s:
                await asyncio.sleep(self._faults.delay_s)
            chunks = [bytes([b]) for b in data] if self._faults.byte_by_byte else [data]
            for chunk in chunks:
                if self._faults.baudrate:
                    start = max(loop.time(), self._line_free_at)
                    self._line_free_at = start + len(chunk) * BITS_PER_BYTE / self._faults.baudrate
                    await asyncio.sleep(self._line_free_at - loop.time())
                elif self._faults.byte_by_byte:
                    await asyncio.sleep(0)
                self._sink(chunk)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class _FrameFaults:
    """Cuts a byte stream at ASH flags and drops or corrupts whole frames.

    The rates are read from the LineFaults on every chunk, so a test can turn faults on after
    a clean startup.
    """

    def __init__(
        self,
        faults: LineFaults,
        to_host: bool,
        rng: random.Random,
        counters: LineCounters,
    ) -> None:
        self._faults = faults
        self._to_host = to_host
        self._rng = rng
        self._counters = counters
        self._partial = bytearray()

    @property
    def _drop(self) -> float:
        return self._faults.drop_to_host if self._to_host else self._faults.drop_to_ncp

    @property
    def _corrupt(self) -> float:
        return self._faults.corrupt_to_host if self._to_host else 0.0

    def apply(self, data: bytes) -> bytes:
        if not self._drop and not self._corrupt and not self._partial:
            return data
        out = bytearray()
        self._partial.extend(data)
        while (end := self._partial.find(FLAG)) >= 0:
            frame = bytes(self._partial[: end + 1])
            del self._partial[: end + 1]
            if len(frame) > 1 and self._rng.random() < self._drop:
                self._counters.frames_dropped += 1
                continue
            if len(frame) > 2 and self._rng.random() < self._corrupt:
                self._counters.frames_corrupted += 1
                i = self._rng.randrange(0, len(frame) - 1)
                corrupted = frame[i] ^ 0x01
                frame = frame[:i] + bytes([corrupted]) + frame[i + 1 :]
            out.extend(frame)
        return bytes(out)


class Line:
    """One host connection. The NCP protocol sees it as an asyncio transport (write/close)."""

    def __init__(self, faults: LineFaults | None = None) -> None:
        self.faults = faults or LineFaults()
        self.counters = LineCounters()
        rng = random.Random(self.faults.seed)
        self._to_host_faults = _FrameFaults(self.faults, True, rng, self.counters)
        self._to_ncp_faults = _FrameFaults(self.faults, False, rng, self.counters)
        self._out = _Pacer(self.faults, self._write_raw)
        self._in = _Pacer(self.faults, self._deliver)
        self._protocol: asyncio.Protocol | None = None
        self._closing = False

    # --- transport interface used by the NCP's AshProtocol ---
    def write(self, data: bytes) -> None:
        if self._closing:
            return
        data = self._to_host_faults.apply(data)
        if data:
            self._out.push(data)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._out.close()
        self._in.close()
        self._close_raw()
        if self._protocol is not None:
            self._protocol.connection_lost(None)

    # --- wiring ---
    def attach(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol
        protocol.connection_made(self)  # type: ignore[arg-type]

    def bytes_from_host(self, data: bytes) -> None:
        self.counters.bytes_to_ncp += len(data)
        data = self._to_ncp_faults.apply(data)
        if data:
            self._in.push(data)

    def _deliver(self, data: bytes) -> None:
        if self._protocol is not None and not self._closing:
            self._protocol.data_received(data)

    def _write_raw(self, data: bytes) -> None:
        raise NotImplementedError

    def _close_raw(self) -> None:
        raise NotImplementedError


class PtyLine(Line):
    """The NCP holds the master side of a pseudo-terminal; the host opens the slave path.

    The slave is put in raw mode here and kept open by the emulator, so the line discipline
    neither echoes nor rewrites bytes before bellows opens it, and the master does not see a
    hang-up while the host reconnects. A stable symlink (`link`) lets a host keep one
    configured path across unplug/replug, as udev's /dev/serial/by-id names do.
    """

    def __init__(self, faults: LineFaults | None = None, link: Path | None = None) -> None:
        super().__init__(faults)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.slave_path = os.ttyname(self._slave)
        self.link = link
        if link is not None:
            tmp = link.with_name(link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.slave_path)
            tmp.replace(link)
        self._pending = bytearray()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._master, self._on_readable)
        self._writer_registered = False

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.slave_path

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: no process has the slave open (we keep it, so rare)
            if exc.errno == errno.EIO:
                return
            raise
        if data:
            self.bytes_from_host(data)

    def _write_raw(self, data: bytes) -> None:
        self.counters.bytes_to_host += len(data)
        self._pending.extend(data)
        self._flush()

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            try:
                n = os.write(self._master, self._pending)
            except BlockingIOError:
                break
            del self._pending[:n]
        if self._pending and not self._writer_registered:
            loop.add_writer(self._master, self._flush)
            self._writer_registered = True
        elif not self._pending and self._writer_registered:
            loop.remove_writer(self._master)
            self._writer_registered = False

    def _close_raw(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._master)
        if self._writer_registered:
            loop.remove_writer(self._master)
        # Closing both sides makes the host's reads fail: that is what unplugging looks like.
        os.close(self._master)
        os.close(self._slave)


class TcpLine(Line, asyncio.Protocol):
    """One accepted TCP client (a network coordinator, `socket://host:port`)."""

    def __init__(self, faults: LineFaults | None = None) -> None:
        Line.__init__(self, faults)
        self._tcp: asyncio.Transport | None = None
        self.on_lost: Callable[[TcpLine], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._tcp = transport

    def data_received(self, data: bytes) -> None:
        self.bytes_from_host(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._tcp = None
        if not self._closing:
            self.close()
        if self.on_lost is not None:
            self.on_lost(self)

    def _write_raw(self, data: bytes) -> None:
        self.counters.bytes_to_host += len(data)
        if self._tcp is not None:
            self._tcp.write(data)

    def _close_raw(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
