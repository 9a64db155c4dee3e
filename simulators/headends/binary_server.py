"""The cellular head-end emulator speaking the compact binary protocol (ams_adapters.wire.binary):
acks SUBMITs by sequence number, queues results until the client POLLs for them and CONFIRMs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ams_adapters.wire import binary as bw
from ams_adapters.wire.common import Notification, WireError
from ams_adapters.wire.reads import ReadRefused
from simulators.headends.core import HeadEndCore

log = logging.getLogger(__name__)


class BinaryHeadEnd:
    def __init__(self, core: HeadEndCore, host: str = "127.0.0.1", port: int = 0) -> None:
        self.core = core
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._results: dict[int, Notification] = {}
        self._next_id = 1
        self.refused = 0
        core.sink = self._queue

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.core.close()
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def down_for(self, seconds: float) -> None:
        self.core.down = True
        await self._stop_listening()
        await asyncio.sleep(seconds)
        await self.start()
        self.core.down = False

    def _queue(self, note: Notification) -> None:
        self._results[self._next_id] = note
        self._next_id += 1

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(4)
                data = await reader.readexactly(bw.frame_length(header))
                ftype, seq, body = bw.unpack(data)
                if not self._on_frame(writer, ftype, seq, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the head-end is shutting down
        except WireError as exc:
            self.refused += 1
            log.info("binary head-end: frame refused: %s", exc)
        finally:
            self._writers.discard(writer)
            writer.close()

    def _on_frame(self, writer: asyncio.StreamWriter, ftype: str, seq: int, body: Any) -> bool:
        if ftype == "SUBMIT":
            self.core.receive(1)
            ack = self.core.handle(bw.request_from(body))
            if self.core.rng.random() < self.core.faults.disconnect_rate:
                self.core.stats["disconnects"] += 1
                return False  # carried out (or not), the answer is lost with the connection
            if ack is not None:
                writer.write(bw.pack("ACK", seq, bw.ack_body(ack)))
        elif ftype == "POLL":
            ids = list(self._results)[: body.max_results]
            writer.write(bw.pack("RESULTS", seq, {"results": [bw.result_body(i, self._results[i]) for i in ids]}))
        elif ftype == "READ":  # interval data, answered at once (paged at the head-end's size)
            last = None if body.last_received == bw.NONE else body.last_received + 900
            start = max(body.start, last or body.start)
            limit = min(body.max_intervals or 1, self.core.settings.max_intervals_per_read)
            try:
                answer = bw.intervals_body(self.core.read_intervals(body.esi_id, start, body.end, limit))
            except ReadRefused as refused:
                answer = bw.intervals_body(refused=refused)
            writer.write(bw.pack("INTERVALS", seq, answer))
        elif ftype == "CONFIRM":
            for i in body.result_ids:
                self._results.pop(i, None)
        else:
            raise WireError("type", ftype, "SUBMIT, POLL, READ or CONFIRM from a client")
        return True
