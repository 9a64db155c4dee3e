"""The MultiSpeak head-end emulator: HAN_Server and DR_Server over SOAP/HTTP (aiohttp), posting
NOT_Server notifications to each request's ``responseURL``.

A notification that cannot be posted (connection refused, timeout, a non-200 answer: the gateway
restarting, or the instance behind that URL gone) is retried, as a head-end's publisher does, with
jittered exponential backoff (0.1 s doubling up to 5 s) for ``callback_retry_s`` (120 s by
default), then counted in ``callbacks_failed``. Each round tries the request's ``responseURL`` and
then each of ``callback_urls`` (other NOT_Server endpoints the operator gave the head-end). A real
deployment of several gateway instances gives the head-end one URL, a load balancer's, which sends
each POST to a live instance; the list stands in for that in tests without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from typing import Any

import aiohttp
from aiohttp import web

from ams_adapters.wire import multispeak as ms
from ams_adapters.wire import multispeak_reads as msr
from ams_adapters.wire.common import HeadEndRequestKind, NoteKind, Notification, WireError
from ams_adapters.wire.reads import INTERVAL_S, ReadRefused
from simulators.headends.core import HeadEndCore

log = logging.getLogger(__name__)
CALLBACK_RETRY_S = 120.0
CALLBACK_BACKOFF_CAP_S = 5.0


class MultiSpeakHeadEnd:
    def __init__(self, core: HeadEndCore, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None,
                 callback_ssl_context: ssl.SSLContext | None = None, *,
                 callback_retry_s: float = CALLBACK_RETRY_S, callback_urls: tuple[str, ...] = ()) -> None:
        self.core = core
        self.ssl_context = ssl_context
        # Verifies the subscriber's certificate when a responseURL is https:// (default: system CAs).
        self.callback_ssl_context = callback_ssl_context
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, str] = {}
        self._kinds: dict[str, HeadEndRequestKind] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused = 0
        self.callbacks_failed = 0
        self.callbacks_retried = 0  # rounds after the first (every URL failed)
        self.callback_errors = 0  # posts that failed (refused, timeout, not 200)
        self.callback_retry_s = callback_retry_s
        self.callback_urls = tuple(callback_urls)
        self._jitter = random.Random(11)  # its own: the core's generator decides the faults
        self.withhold_s = 5.0
        core.sink = self._notify

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/HAN_Server", self._request)
        app.router.add_post("/DR_Server", self._request)
        app.router.add_post(f"/{msr.ENDPOINT}", self._meter_reading)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()
        connector = aiohttp.TCPConnector(ssl=self.callback_ssl_context) if self.callback_ssl_context else None
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0), connector=connector)

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True,
                                 ssl_context=self.ssl_context)
        await self._site.start()
        server: Any = self._site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.core.close()
        for t in list(self._tasks):
            t.cancel()
        # Wait for the cancelled callbacks to unwind before closing their session: a post cut
        # while connecting would otherwise leave its socket behind.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def down_for(self, seconds: float) -> None:
        """The head-end goes away: the port refuses connections, then comes back."""
        self.core.down = True
        if self._site is not None:
            await self._site.stop()
        await asyncio.sleep(seconds)
        await self._listen()
        self.core.down = False

    async def _request(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.core.down:  # a connection kept alive from before the outage
            return web.Response(status=503, headers={"Retry-After": "1"})
        try:
            subscriber = ms.decode_register(body)
            if subscriber is not None:
                self._urls[""] = subscriber
                return web.Response(body=ms.encode_ack_envelope("RegisterForService"), content_type="text/xml")
            reqs, response_url, op = ms.decode_requests(body)
        except WireError as exc:
            self.refused += 1
            return web.Response(status=400, text=str(exc))
        self.core.receive(len(reqs))
        acks = []
        for req in reqs:  # a ...ToGroup operation: each member is its own transaction
            self._urls[req.transaction_id] = response_url
            self._urls.setdefault("", response_url)  # meter events: the registered subscriber
            self._kinds[req.transaction_id] = req.kind
            acks.append(self.core.handle(req))
        if any(ack is None for ack in acks):  # timeout fault: carried out, answer withheld
            await asyncio.sleep(self.withhold_s)
            return web.Response(status=504)
        done = [a for a in acks if a is not None]
        if op in ms.GROUP_OPERATIONS:
            self.core.stats["group_requests"] += 1
            self.core.stats["group_members"] += len(done)
            return web.Response(body=ms.encode_group_response(op, done), content_type="text/xml")
        (ack,) = done
        if ack.status.value == "busy":
            return web.Response(status=503, headers={"Retry-After": f"{ack.retry_after_s or 1:.3f}"})
        return web.Response(body=ms.encode_response(op, ack), content_type="text/xml")

    async def _meter_reading(self, request: web.Request) -> web.Response:
        """MR_Server: interval data answered at once (paged), on-demand reads acknowledged and
        answered later with a ReadingChangedNotification to the request's responseURL."""
        body = await request.read()
        if self.core.down:
            return web.Response(status=503, headers={"Retry-After": "1"})
        try:
            op = msr.request_operation(body)
            if op.tag.endswith(msr.GET_INTERVALS):
                esi_id, start, end = msr.decode_get_intervals(op)
                limit = self.core.settings.max_intervals_per_read
                try:
                    page = self.core.read_intervals(esi_id, start, end, limit)
                except ReadRefused as refused:
                    if refused.busy:
                        return web.Response(status=503, headers={"Retry-After": f"{refused.retry_after_s:.3f}"})
                    return web.Response(body=msr.encode_read_refused(msr.GET_INTERVALS, refused),
                                        content_type="text/xml")
                remaining = 0 if page.next_start is None else (end - page.next_start) // INTERVAL_S
                return web.Response(body=msr.encode_intervals(page, remaining), content_type="text/xml")
            req, response_url = msr.decode_initiate_read(op)
        except WireError as exc:
            self.refused += 1
            return web.Response(status=400, text=str(exc))
        self.core.receive(1)
        self._urls[req.transaction_id] = response_url
        self._kinds[req.transaction_id] = req.kind
        ack = self.core.handle(req)
        if ack is None:  # timeout fault: carried out, answer withheld
            await asyncio.sleep(self.withhold_s)
            return web.Response(status=504)
        if ack.status.value == "busy":
            return web.Response(status=503, headers={"Retry-After": f"{ack.retry_after_s or 1:.3f}"})
        return web.Response(body=msr.encode_initiate_response(ack), content_type="text/xml")

    def _notify(self, note: Notification) -> None:
        url = self._urls.get(note.transaction_id) or self._urls.get("")
        if url is None or self._session is None or self._session.closed:
            return
        if note.kind is NoteKind.METER_READ:
            body = msr.encode_reading_changed(note)
        else:
            body = ms.encode_notification(note, self._kinds.get(note.transaction_id))
        task = asyncio.get_running_loop().create_task(self._post(url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, body: bytes) -> None:
        assert self._session is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.callback_retry_s
        targets = [url, *(u for u in self.callback_urls if u != url)]
        attempt = 0
        while True:
            for target in targets:
                if self._session.closed:
                    return
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError):
                    async with self._session.post(target, data=body, headers={"Content-Type": "text/xml"}) as resp:
                        await resp.read()
                        if resp.status == 200:
                            return
                self.callback_errors += 1
                self.core.stats["callback_errors"] += 1
            left = deadline - loop.time()
            if left <= 0:
                break
            attempt += 1
            self.callbacks_retried += 1
            delay = min(CALLBACK_BACKOFF_CAP_S, 0.1 * 2 ** min(attempt, 10)) * (0.5 + self._jitter.random() / 2)
            await asyncio.sleep(min(left, delay))
        self.callbacks_failed += 1
        log.warning("NOT_Server callback given up after %.0f s: %s", self.callback_retry_s, ", ".join(targets))
