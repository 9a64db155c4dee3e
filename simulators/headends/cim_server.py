"""The IEC 61968-9 head-end emulator on MQTT: takes create/cancel EndDeviceControls from
``<prefix>/request/EndDeviceControls``, replies to each message's ReplyAddress (Result OK |
PARTIAL | FAILED) and publishes EndDeviceEvents to ``<prefix>/event/EndDeviceEvents``. A ``get
EndDevices`` (the meter's HAN inventory) on the same topic is acknowledged at once and answered with
the data, once the meter gave it, on the same ReplyAddress and CorrelationID."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict, deque

import aiomqtt

from ams_adapters.wire import cim, cim_reads
from ams_adapters.wire.common import Ack, HeadEndRequest, NoteKind, Notification, WireError
from ams_adapters.wire.reads import ReadRefused
from simulators.headends.core import HeadEndCore

log = logging.getLogger(__name__)


class CimHeadEnd:
    def __init__(self, core: HeadEndCore, host: str = "127.0.0.1", port: int = 1883, prefix: str = "hangw",
                 client_id: str | None = None) -> None:
        self.core = core
        self.host, self.port, self.prefix = host, port, prefix
        self.client_id = client_id or f"headend-{uuid.uuid4().hex[:8]}"
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._outbox: deque[Notification] = deque(maxlen=100_000)
        # asynchronous gets (EndDevices, on-demand MeterReadings): transaction id -> (ReplyAddress,
        # MessageID, Noun) of the data reply
        self._gets: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        self._replies: deque[tuple[str, bytes]] = deque(maxlen=10_000)
        self._flush: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.refused = 0
        core.sink = self._notify

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(5):
            await self._ready.wait()

    async def close(self) -> None:
        self.core.close()
        await self._stop()

    async def _stop(self) -> None:
        for t in (self._task, self._flush):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        self._task = self._flush = None
        self._client = None
        self._ready.clear()

    async def down_for(self, seconds: float) -> None:
        """Off the broker for a while; its persistent session keeps the requests queued (QoS 1)."""
        self.core.down = True
        await self._stop()
        await asyncio.sleep(seconds)
        self.core.down = False
        await self.start()

    async def _run(self) -> None:
        t = cim.topics(self.prefix)
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                          clean_session=False) as client:
                    await client.subscribe(t["request"], qos=1)
                    self._client = client
                    self._ready.set()
                    self._flush = asyncio.create_task(self._flusher())
                    async for msg in client.messages:
                        await self._on_request(client, bytes(msg.payload))
            except aiomqtt.MqttError as exc:
                log.info("cim head-end: broker connection lost: %s", exc)
                self._client = None
                await asyncio.sleep(0.1)

    async def _on_request(self, client: aiomqtt.Client, payload: bytes) -> None:
        try:
            header, root = cim.parse(payload)
            if header.verb == "get" and header.noun == cim_reads.NOUN:
                await self._on_get_readings(client, header, cim_reads.get_meter_readings_from(header, root))
                return
            if header.verb == "get":
                await self._on_get(client, header, cim.get_end_devices_from(header, root))
                return
            requests = cim.controls_from(header, root)
        except WireError as exc:
            self.refused += 1
            log.info("cim head-end: request refused: %s", exc)
            return
        self.core.receive(len(requests))
        acks: list[Ack] = []
        withheld = False
        for req in requests:
            ack = self.core.handle(req)
            if ack is None:
                withheld = True
            else:
                acks.append(ack)
        if withheld or not header.reply_address:
            return  # timeout fault: carried out, no reply
        await client.publish(header.reply_address, cim.encode_reply(header.message_id, uuid.uuid4().hex, acks), qos=1)

    async def _on_get(self, client: aiomqtt.Client, header: cim.Header, req: HeadEndRequest) -> None:
        """An asynchronous get (EndDevices, an on-demand MeterReadings): acknowledged at once, the
        data follows on the same ReplyAddress and CorrelationID once the meter answered."""
        ack = self.core.handle(req)
        if ack is None or not header.reply_address:
            return  # timeout fault: carried out, no acknowledgement
        if ack.status.value == "ok":
            self._gets[req.transaction_id] = (header.reply_address, header.message_id, header.noun)
            while len(self._gets) > 10_000:
                self._gets.popitem(last=False)
        await client.publish(header.reply_address,
                             cim.encode_reply(header.message_id, uuid.uuid4().hex, [ack], noun=header.noun), qos=1)

    async def _on_get_readings(self, client: aiomqtt.Client, header: cim.Header,
                               get: cim_reads.MeterReadingsGet) -> None:
        if get.request is not None:  # the on-demand register read
            await self._on_get(client, header, get.request)
            return
        if not header.reply_address:
            self.refused += 1
            return
        try:
            page = self.core.read_intervals(get.esi_id, get.start, get.end, self.core.settings.max_intervals_per_read)
            body = cim_reads.encode_intervals(header.message_id, uuid.uuid4().hex, page)
        except ReadRefused as refused:
            body = cim_reads.encode_refused(header.message_id, uuid.uuid4().hex, refused)
        await client.publish(header.reply_address, body, qos=1)

    def _notify(self, note: Notification) -> None:
        get = self._gets.get(note.transaction_id)
        if get is not None and note.kind in (NoteKind.INVENTORY, NoteKind.METER_READ, NoteKind.FAILED):
            reply_address, message_id, noun = get
            encode = cim_reads.encode_register if noun == cim_reads.NOUN else cim.encode_end_devices
            self._replies.append((reply_address, encode(message_id, uuid.uuid4().hex, note)))
            return
        self._outbox.append(note)

    async def _flusher(self) -> None:
        topic = cim.topics(self.prefix)["events"]
        while True:
            await asyncio.sleep(0.01)  # events go out in small batches, as head-ends publish them
            client = self._client
            while client is not None and self._replies:
                topic, body = self._replies.popleft()
                try:
                    await client.publish(topic, body, qos=1)
                except aiomqtt.MqttError:
                    self._replies.appendleft((topic, body))
                    break
            if client is None or not self._outbox:
                continue
            batch = [self._outbox.popleft() for _ in range(min(200, len(self._outbox)))]
            try:
                await client.publish(topic, cim.encode_events(uuid.uuid4().hex, batch), qos=1)
            except aiomqtt.MqttError:
                self._outbox.extendleft(reversed(batch))
