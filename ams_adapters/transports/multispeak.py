"""MultiSpeak SOAP over HTTP(S): aiohttp client for HAN_Server/DR_Server, aiohttp server for the
NOT_Server callbacks the head-end posts to ``responseURL``.

zeep was considered; the head-end emulators speak a handful of operations whose messages
``ams_adapters.wire.multispeak`` builds and checks with lxml, and vendors' WSDLs are known to be
incomplete (HEADENDS.md §9), so a thin aiohttp client is the more robust choice here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from ams_adapters.adapter import STORE_WAIT_S, NotesSink
from ams_adapters.wire import multispeak as ms
from ams_adapters.wire import multispeak_reads as msr
from ams_adapters.wire.common import Ack, AckStatus, HeadEndRequest, HeadEndRequestKind, Notification, WireError
from ams_adapters.wire.reads import IntervalPage, ReadRefused

log = logging.getLogger(__name__)


class MultiSpeakTransport:
    def __init__(self, base_url: str, *, callback_host: str = "127.0.0.1", callback_port: int = 0,
                 public_callback_url: str | None = None, timeout_s: float = 2.0, max_connections: int = 50,
                 ssl_context: ssl.SSLContext | None = None,
                 callback_ssl_context: ssl.SSLContext | None = None, group_operations: bool = False,
                 max_group_size: int = 500) -> None:
        self.base_url = base_url.rstrip("/")
        self.callback_host = callback_host
        self.callback_port = callback_port
        self._public_url = public_callback_url
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._ssl = ssl_context
        # The NOT_Server endpoint serves HTTPS with this context (the head-end posts callbacks to it).
        self._callback_ssl = callback_ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._on_notes: NotesSink | None = None
        self.response_url = ""
        self.notifications_refused = 0
        self.registered = False
        # Identical payloads to several meters go as one ...ToGroup operation (when the head-end
        # supports them: the profile's `group_operations`).
        self.group_operations = group_operations
        self.max_group_size = max_group_size
        self.group_requests = 0

    async def start(self, on_notes: NotesSink) -> None:
        self._on_notes = on_notes
        app = web.Application()
        app.router.add_post("/NOT_Server", self._notification)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.callback_host, self.callback_port, ssl_context=self._callback_ssl)
        await site.start()
        server: Any = site._server
        port = server.sockets[0].getsockname()[1] if server is not None and server.sockets else self.callback_port
        self.callback_port = port
        scheme = "https" if self._callback_ssl is not None else "http"
        self.response_url = self._public_url or f"{scheme}://{self.callback_host}:{port}/NOT_Server"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections, ssl=self._ssl or False),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        await self._register()

    async def _register(self) -> None:
        assert self._session is not None
        try:
            async with self._session.post(f"{self.base_url}/HAN_Server", data=ms.encode_register(self.response_url),
                                          headers={"Content-Type": "text/xml; charset=utf-8",
                                                   "SOAPAction": f'"{ms.MS_NS}/RegisterForService"'}) as resp:
                await resp.read()
                self.registered = resp.status == 200
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            log.info("MultiSpeak RegisterForService at %s failed (retried on the next send): %s", self.base_url, exc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _notification(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            note: Notification | None = msr.decode_reading_changed(body)
            if note is None:
                note = ms.decode_notification(body)
        except WireError as exc:
            self.notifications_refused += 1
            return web.Response(status=400, text=str(exc))
        if self._on_notes is not None:
            stored = self._on_notes([note])
            if stored is not None:
                try:
                    async with asyncio.timeout(STORE_WAIT_S):
                        await stored
                except TimeoutError:  # not stored yet: the head-end keeps it and posts it again
                    return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(body=ms.encode_ack_envelope("Notification"), content_type="text/xml")

    async def send(self, requests: Sequence[HeadEndRequest]) -> list[Ack]:
        if not self.registered and self._session is not None:
            await self._register()
        if not self.group_operations:
            return list(await asyncio.gather(*(self._one(r) for r in requests)))
        groups: dict[tuple[object, ...], list[int]] = {}
        singles: list[int] = []
        for i, r in enumerate(requests):
            key = ms.group_key(r)
            if key is None:
                singles.append(i)
            else:
                groups.setdefault(key, []).append(i)
        jobs: list[tuple[list[int], Any]] = []
        for members in groups.values():
            if len(members) < 2:
                singles.extend(members)
                continue
            for start in range(0, len(members), self.max_group_size):
                part = members[start:start + self.max_group_size]
                jobs.append((part, self._group([requests[i] for i in part])))
        jobs.extend(([i], self._one_as_list(requests[i])) for i in singles)
        answers = await asyncio.gather(*(job for _, job in jobs))
        out: list[Ack | None] = [None] * len(requests)
        for (indexes, _), acks in zip(jobs, answers, strict=True):
            for i, ack in zip(indexes, acks, strict=True):
                out[i] = ack
        return [a for a in out if a is not None]

    async def _one_as_list(self, req: HeadEndRequest) -> list[Ack]:
        return [await self._one(req)]

    async def _group(self, reqs: list[HeadEndRequest]) -> list[Ack]:
        txids = [r.transaction_id for r in reqs]
        self.group_requests += 1
        return await self._post(ms.GROUP_OPERATION_OF_KIND[reqs[0].kind], reqs[0].kind, txids,
                                lambda: ms.encode_group_request(reqs, self.response_url),
                                lambda data: ms.decode_group_response(data, txids))

    async def _one(self, req: HeadEndRequest) -> Ack:
        if req.kind is HeadEndRequestKind.METER_READ:  # MR_Server's on-demand read
            (ack,) = await self._post(msr.INITIATE_READ, req.kind, [req.transaction_id],
                                      lambda: msr.encode_initiate_read(req, self.response_url),
                                      lambda data: [msr.decode_initiate_response(data, req.transaction_id)])
            return ack
        (ack,) = await self._post(ms.OPERATION_OF_KIND[req.kind], req.kind, [req.transaction_id],
                                  lambda: ms.encode_request(req, self.response_url),
                                  lambda data: [ms.decode_response(data, req.transaction_id)])
        return ack

    async def _post(self, op: str, kind: HeadEndRequestKind, txids: list[str], encode: Callable[[], bytes],
                    decode: Callable[[bytes], list[Ack]]) -> list[Ack]:
        """One SOAP call carrying the transactions `txids`; every failure becomes an Ack per
        transaction (busy with Retry-After, or an error naming what went wrong)."""
        if self._session is None:
            return [Ack(t, AckStatus.ERROR, "transport: not started") for t in txids]
        url = f"{self.base_url}/{ms.ENDPOINT_OF_KIND[kind]}"
        body = encode()
        try:
            async with self._session.post(url, data=body, headers={
                    "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ms.MS_NS}/{op}"'}) as resp:
                data = await resp.read()
                if resp.status == 503:
                    retry = float(resp.headers.get("Retry-After", "1"))
                    return [Ack(t, AckStatus.BUSY, "HTTP 503", retry) for t in txids]
                if resp.status != 200:
                    return [Ack(t, AckStatus.ERROR, f"HTTP {resp.status}") for t in txids]
                return decode(data)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            return [Ack(t, AckStatus.ERROR, f"transport: {type(exc).__name__} {exc}") for t in txids]
        except WireError as exc:
            return [Ack(t, AckStatus.ERROR, f"head-end answer refused: {exc}") for t in txids]

    async def read_intervals(self, esi_id: str, start: int, end: int, last_received: int | None) -> IntervalPage:
        """One GetReadingsByMeterIDListAndFieldNameIntervalData call (ams_adapters/wire/multispeak_reads.py).
        Raises `ReadRefused` (the head-end's errorObject, HTTP 503/other, transport failures) and
        `WireError` (a malformed answer)."""
        if self._session is None:
            raise ReadRefused("transport: not started", retry_after_s=1.0)
        body = msr.encode_get_intervals(esi_id, start, end, last_received)
        try:
            async with self._session.post(f"{self.base_url}/{msr.ENDPOINT}", data=body, headers={
                    "Content-Type": "text/xml; charset=utf-8",
                    "SOAPAction": f'"{ms.MS_NS}/{msr.GET_INTERVALS}"'}) as resp:
                data = await resp.read()
                if resp.status == 503:
                    retry = resp.headers.get("Retry-After", "1")
                    raise ReadRefused("head-end busy: HTTP 503", busy=True,
                                      retry_after_s=float(retry) if retry.replace(".", "", 1).isdigit() else 1.0)
                if resp.status != 200:
                    raise ReadRefused(f"head-end answered HTTP {resp.status}", retry_after_s=5.0)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise ReadRefused(f"transport: {type(exc).__name__} {exc}", retry_after_s=5.0) from None
        return msr.decode_intervals(data, esi_id)
