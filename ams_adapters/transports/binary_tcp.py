"""The compact binary protocol over TCP (ams_adapters.wire.binary): one connection, pipelined
SUBMITs matched to ACKs by sequence number, and a poll loop fetching RESULTS (then CONFIRMing
them). Reconnects with jittered backoff after a drop; a SUBMIT lost with the connection comes back
as a transport error, and the adapter's retry reuses its transaction id."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Sequence

from ams_adapters.adapter import STORE_WAIT_S, NotesSink, close_unawaited
from ams_adapters.pacing import Backoff
from ams_adapters.wire import binary as bw
from ams_adapters.wire.common import Ack, AckStatus, HeadEndRequest, WireError
from ams_adapters.wire.reads import INTERVAL_S, IntervalPage, ReadRefused

log = logging.getLogger(__name__)


class BinaryTransport:
    def __init__(self, host: str, port: int, *, poll_interval_s: float = 0.2, timeout_s: float = 2.0,
                 max_results: int = 500, max_intervals: int = 2880) -> None:
        self.host, self.port = host, port
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.max_results = max_results
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._pending: dict[int, tuple[str, asyncio.Future[Ack]]] = {}
        self._reading: dict[int, asyncio.Future[IntervalPage]] = {}  # READ sequence -> its INTERVALS
        self.max_intervals = max_intervals
        self._seq = 0
        self._on_notes: NotesSink | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._confirming: set[asyncio.Task[None]] = set()
        self._backoff = Backoff(0.05, 1.0)
        self.connects = 0

    async def start(self, on_notes: NotesSink) -> None:
        self._on_notes = on_notes
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._poll())]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await self._connected.wait()

    async def close(self) -> None:
        for t in [*self._tasks, *self._confirming]:
            t.cancel()
        for t in [*self._tasks, *self._confirming]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        self._drop("transport: closed")

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _drop(self, reason: str) -> None:
        self._connected.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for txid, fut in self._pending.values():
            if not fut.done():
                fut.set_result(Ack(txid, AckStatus.ERROR, reason))
        self._pending.clear()
        for read in self._reading.values():
            if not read.done():
                read.set_exception(ReadRefused(reason, retry_after_s=5.0))
        self._reading.clear()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                attempt += 1
                await asyncio.sleep(self._backoff.delay(min(attempt, 6)) + 0.02)
                continue
            attempt = 0
            self._writer = writer
            self.connects += 1
            self._connected.set()
            try:
                while True:
                    header = await reader.readexactly(4)
                    data = await reader.readexactly(bw.frame_length(header))
                    self._on_frame(*bw.unpack(data))
            except (asyncio.IncompleteReadError, ConnectionError, WireError) as exc:
                log.info("binary head-end %s:%s connection lost: %s", self.host, self.port, exc)
            finally:
                self._drop("transport: connection lost")

    def _on_frame(self, ftype: str, seq: int, body: object) -> None:
        if ftype == "ACK":
            entry = self._pending.pop(seq, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(bw.ack_from(entry[0], body))
        elif ftype == "INTERVALS":
            read = self._reading.pop(seq, None)
            if read is not None and not read.done():
                try:
                    read.set_result(bw.page_from(body))
                except (ReadRefused, WireError) as exc:
                    read.set_exception(exc)
        elif ftype == "RESULTS":
            pairs = [bw.result_from(r) for r in body.results]  # type: ignore[attr-defined]
            stored = self._on_notes([n for _, n in pairs]) if pairs and self._on_notes is not None else None
            if stored is not None:
                # confirmed once the gateway stored what they became; meanwhile they are resent
                # (and recognized as duplicates)
                task = asyncio.get_running_loop().create_task(self._confirm_when(stored, [i for i, _ in pairs]))
                self._confirming.add(task)
                task.add_done_callback(self._confirming.discard)
                task.add_done_callback(functools.partial(close_unawaited, stored))
            elif pairs and self._writer is not None:
                # confirm only after the adapter has taken them: unconfirmed results are resent
                self._writer.write(bw.pack("CONFIRM", self._next_seq(), {"result_ids": [i for i, _ in pairs]}))

    async def _confirm_when(self, stored: Awaitable[None], result_ids: list[int]) -> None:
        try:
            async with asyncio.timeout(STORE_WAIT_S):
                await stored
        except TimeoutError:
            return  # not confirmed: the head-end resends them
        if self._writer is not None:
            with contextlib.suppress(ConnectionError):
                self._writer.write(bw.pack("CONFIRM", self._next_seq(), {"result_ids": result_ids}))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            if self._writer is not None:
                with contextlib.suppress(ConnectionError):
                    self._writer.write(bw.pack("POLL", self._next_seq(), {"max_results": self.max_results}))

    async def send(self, requests: Sequence[HeadEndRequest]) -> list[Ack]:
        if self._writer is None:
            return [Ack(r.transaction_id, AckStatus.ERROR, "transport: not connected") for r in requests]
        loop = asyncio.get_running_loop()
        futs = []
        for r in requests:
            seq = self._next_seq()
            fut: asyncio.Future[Ack] = loop.create_future()
            self._pending[seq] = (r.transaction_id, fut)
            futs.append((seq, r, fut))
            self._writer.write(bw.pack("SUBMIT", seq, bw.request_body(r)))
        out = []
        for seq, r, fut in futs:
            try:
                async with asyncio.timeout(self.timeout_s):
                    out.append(await fut)
            except TimeoutError:
                self._pending.pop(seq, None)
                out.append(Ack(r.transaction_id, AckStatus.ERROR, "transport: timeout"))
        return out

    async def read_intervals(self, esi_id: str, start: int, end: int, last_received: int | None) -> IntervalPage:
        """One READ, answered by INTERVALS of the same sequence (ams_adapters/wire/binary.py).
        Raises `ReadRefused` (a refusal, the connection lost or not there, no answer in time) and
        `WireError` (a malformed answer)."""
        if self._writer is None:
            raise ReadRefused("transport: not connected", retry_after_s=5.0)
        seq = self._next_seq()
        fut: asyncio.Future[IntervalPage] = asyncio.get_running_loop().create_future()
        self._reading[seq] = fut
        asked = min(self.max_intervals, -(-(end - start) // INTERVAL_S))
        self._writer.write(bw.pack("READ", seq, bw.read_body(esi_id, start, end, last_received, asked)))
        try:
            async with asyncio.timeout(self.timeout_s):
                return await fut
        except TimeoutError:
            raise ReadRefused("transport: timeout", retry_after_s=5.0) from None
        finally:
            self._reading.pop(seq, None)
