"""``FaultProxy``: a loopback TCP proxy that cuts every connection through it on demand (or at
random intervals), to prove the adapters reconnect (and resubscribe) after a socket or broker
drop. A whole peer on real sockets, not a mock."""

from __future__ import annotations

import asyncio
import contextlib
import random


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._cutter: asyncio.Task[None] | None = None
        self.cuts = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._cutter is not None:
            self._cutter.cancel()
        if self._server is not None:
            self._server.close()
            self.cut_all()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def cut_all(self) -> None:
        if self._conns:
            self.cuts += 1
        for w in list(self._conns):
            w.close()
        self._conns.clear()

    def cut_randomly(self, mean_interval_s: float, rng: random.Random | None = None) -> None:
        rng = rng or random.Random(3)

        async def cutter() -> None:
            while True:
                await asyncio.sleep(rng.expovariate(1.0 / mean_interval_s))
                self.cut_all()

        self._cutter = asyncio.create_task(cutter())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_w: asyncio.StreamWriter | None = None
        try:
            try:
                up_r, up_w = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self._conns.update((writer, up_w))

            async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    while data := await r.read(65536):
                        w.write(data)
                        await w.drain()
                w.close()

            with contextlib.suppress(asyncio.CancelledError):  # the proxy is closing
                await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        finally:
            # Also when cancelled half-way (a client that connected as the proxy closed): both
            # sockets are closed, none is left to the garbage collector.
            for w in (writer, up_w):
                if w is not None:
                    w.close()
                    self._conns.discard(w)
