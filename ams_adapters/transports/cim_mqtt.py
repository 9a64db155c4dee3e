"""IEC 61968-9 over MQTT (aiomqtt 2.x, QoS 1, persistent session): the one module that touches
aiomqtt for the adapters (DESIGN.md: keep it behind one small module).

Topics under a prefix: requests go to ``<prefix>/request/EndDeviceControls``; the head-end replies
to our ``ReplyAddress`` ``<prefix>/reply/<client id>`` and publishes EndDeviceEvents to
``<prefix>/event/EndDeviceEvents``. A dropped broker connection is re-established with jittered
backoff; the persistent session (MQTT 5, clean_start=False, a session expiry interval, fixed client
id) keeps our subscriptions and the QoS 1 messages queued for us meanwhile, and we subscribe again
anyway.

Several gateway instances (issue 14): each has its own client id and its own reply topic (the
acknowledgement of a request goes back to the instance that sent it), and with `share_group` they
take the EndDeviceEvents through an MQTT 5 shared subscription ``$share/<group>/<events topic>``:
the broker hands each event to one member of the group, so each delivery report is handled once.
The broker keeps a member's persistent session while it restarts, and what it routed to that
member meanwhile reaches it when it is back (Mosquitto 2 queues for an offline member rather than
passing its share to another one): nothing is lost while an instance restarts, but an instance that
never comes back takes what is queued for it to its session's expiry (docs/operator.md).

Nothing is lost on a kill: the client acknowledges (PUBACK) an EndDeviceEvents message only once the
gateway has stored what it carried (the notes sink's awaitable, ams_adapters/adapter.py), in the order
the messages came (MQTT 5, 4.6: PUBACKs in the order of the PUBLISHes). A gateway killed between
receipt and commit leaves the message unacknowledged in its session and the broker sends it again
when the instance is back. A message whose content is refused (WireError) is acknowledged at once
and counted (`refused`): sent again it would be refused again. A message not stored within
`STORE_WAIT_S` is not acknowledged either: the transport drops the connection, and the broker
resends what is unacknowledged on the new one (MQTT resends only on a new connection).

A ``han_inventory`` request travels as ``get EndDevices`` (ams_adapters/wire/cim.py): its
acknowledgement answers `send`, and the data reply that follows on the same reply topic becomes an
``inventory`` notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ams_adapters.adapter import STORE_WAIT_S, NotesSink, close_unawaited
from ams_adapters.contract import ContractError
from ams_adapters.pacing import Backoff
from ams_adapters.wire import cim, cim_reads
from ams_adapters.wire.common import Ack, AckStatus, HeadEndRequest, HeadEndRequestKind, WireError
from ams_adapters.wire.reads import IntervalPage, ReadRefused

log = logging.getLogger(__name__)

# How long the broker keeps an instance's session (its subscriptions and the QoS 1 messages routed
# to it) after the connection drops: long enough for a restart or an upgrade.
DEFAULT_SESSION_EXPIRY_S = 3600
MAX_SESSION_EXPIRY_S = 0xFFFFFFFF - 1  # MQTT 5: 0xFFFFFFFF means "never expires"


def check_share_group(group: str) -> str:
    """An MQTT 5 ShareName: at least one character, none of '/', '+', '#' (MQTT 5, 4.8.2)."""
    if not group or any(c in group for c in "/+#") or len(group) > 200:
        raise ContractError("share_group", group, "1..200 characters, none of '/', '+' or '#' (an MQTT 5 ShareName)")
    return group


@dataclass(slots=True)
class _Received:
    mid: int
    qos: int
    stored: bool = False


class CimMqttTransport:
    def __init__(self, host: str, port: int, prefix: str, *, client_id: str | None = None,
                 timeout_s: float = 2.0, issuer_id: str = "han-gateway", share_group: str | None = None,
                 session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S) -> None:
        if share_group is not None:
            check_share_group(share_group)
            if not client_id:
                raise ContractError("client_id", client_id, "a fixed client id per gateway instance with "
                                    "share_group (the broker keeps each instance's session by it)")
        if not 0 <= session_expiry_s <= MAX_SESSION_EXPIRY_S:
            raise ContractError("session_expiry_s", session_expiry_s, f"0..{MAX_SESSION_EXPIRY_S} seconds")
        self.host, self.port, self.prefix = host, port, prefix
        self.client_id = client_id or f"hangw-{uuid.uuid4().hex[:10]}"
        self.timeout_s = timeout_s
        self.issuer_id = issuer_id
        self.share_group = share_group
        self.session_expiry_s = session_expiry_s
        self.reply_topic = f"{cim.topics(prefix)['reply']}/{self.client_id}"
        self.events_topic = cim.topics(prefix)["events"]
        # What we subscribe to for the events: shared between the group's members, or our own.
        self.events_filter = f"$share/{share_group}/{self.events_topic}" if share_group else self.events_topic
        self._client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()
        self._waiting: dict[str, tuple[list[str], asyncio.Future[list[Ack]]]] = {}
        # interval reads (get MeterReadings, answered at once): MessageID -> the reply's bytes
        self._reads: dict[str, asyncio.Future[bytes]] = {}
        self._on_notes: NotesSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(0.05, 1.0)
        self.connects = 0
        self.refused = 0
        self.stalls = 0  # connections dropped because a message was not stored within STORE_WAIT_S
        self.store_wait_s = STORE_WAIT_S

    async def start(self, on_notes: NotesSink) -> None:
        self._on_notes = on_notes
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout_s * 2):
                await self._ready.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_waiting("transport: closed")

    def _fail_waiting(self, reason: str) -> None:
        for txids, fut in self._waiting.values():
            if not fut.done():
                fut.set_result([Ack(t, AckStatus.ERROR, reason) for t in txids])
        self._waiting.clear()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                client = aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                        protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                                        properties=self._connect_properties(), timeout=self.timeout_s)
                # aiomqtt 2.x does not expose manual acknowledgement (empicano/aiomqtt#345, open);
                # its paho client (paho-mqtt >= 2.0) has it: `manual_ack_set` and `ack(mid, qos)`.
                # Set before connecting: what the session holds comes right after the CONNACK.
                paho = client._client
                paho.manual_ack_set(True)
                async with client:
                    # paho leaves Nagle's algorithm on: each small request would wait for the
                    # broker's delayed ACK (aiomqtt owns paho's socket callbacks: set it here).
                    sock = paho.socket()
                    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    await client.subscribe(self.reply_topic, qos=1)
                    await client.subscribe(self.events_filter, qos=1)
                    self._client = client
                    self.connects += 1
                    attempt = 0
                    self._ready.set()
                    acks = InOrderAcks(paho.ack)
                    reading = asyncio.create_task(self._read(client, acks))
                    stalled = asyncio.create_task(acks.stalled.wait())
                    try:
                        await asyncio.wait({reading, stalled}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        acks.close()
                        reading.cancel()
                        stalled.cancel()
                        ended = await asyncio.gather(reading, stalled, return_exceptions=True)
                    if isinstance(ended[0], aiomqtt.MqttError):
                        raise ended[0]
                    self.stalls += 1
                    log.warning("broker %s:%s: a message was not stored within %s s; reconnecting so the broker "
                                "sends the unacknowledged ones again", self.host, self.port, self.store_wait_s)
            except aiomqtt.MqttError as exc:
                log.info("broker %s:%s connection lost: %s", self.host, self.port, exc)
            finally:
                self._client = None
                self._ready.clear()
                self._fail_waiting("transport: broker connection lost")
            attempt += 1
            await asyncio.sleep(self._backoff.delay(min(attempt, 6)) + 0.02)

    async def _read(self, client: aiomqtt.Client, acks: InOrderAcks) -> None:
        async for msg in client.messages:
            entry = acks.received(msg.mid, msg.qos)
            try:
                stored = self._on_message(str(msg.topic), bytes(msg.payload))
            except Exception:  # a message this code cannot handle: acknowledged (not resent forever), counted
                self.refused += 1
                log.exception("61968 message on %s could not be handled", msg.topic)
                stored = None
            if stored is None:
                acks.done(entry)
            else:
                acks.when_stored(entry, stored, self.store_wait_s)

    def _connect_properties(self) -> Properties:
        # MQTT 5: the session outlives the connection by this long (0 would end it at once).
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        return props

    def _on_message(self, topic: str, payload: bytes) -> Awaitable[None] | None:
        """Handle one message; what to wait for before acknowledging it (None: acknowledge now)."""
        try:
            if topic == self.reply_topic:
                h, root = cim.parse(payload)
                read = self._reads.pop(h.correlation_id or "", None)
                if read is not None:
                    if not read.done():
                        read.set_result(payload)
                    return None
                meter_read = cim_reads.register_note(h, root)
                if meter_read is not None:
                    return self._on_notes([meter_read]) if self._on_notes is not None else None
                inventory = cim.end_devices_note(h, root) if h.noun == "EndDevices" else None
                if inventory is not None:
                    return self._on_notes([inventory]) if self._on_notes is not None else None
                entry = self._waiting.pop(h.correlation_id or "", None)
                if entry is not None and not entry[1].done():
                    _, acks = cim.decode_reply(payload, entry[0])
                    entry[1].set_result(acks)
            else:
                notes = cim.decode_events(payload)
                if notes and self._on_notes is not None:
                    return self._on_notes(notes)
        except WireError as exc:
            # Acknowledged (below) and counted: the same bytes sent again would be refused again.
            self.refused += 1
            log.warning("61968 message on %s refused: %s", topic, exc)
        return None

    async def send(self, requests: Sequence[HeadEndRequest]) -> list[Ack]:
        client = self._client
        txids = [r.transaction_id for r in requests]
        if client is None:
            return [Ack(t, AckStatus.ERROR, "transport: broker not connected") for t in txids]
        message_id = uuid.uuid4().hex
        fut: asyncio.Future[list[Ack]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = (txids, fut)
        if len(requests) == 1 and requests[0].kind is HeadEndRequestKind.HAN_INVENTORY:
            body = cim.encode_get_end_devices(message_id, self.reply_topic, requests[0])
        elif len(requests) == 1 and requests[0].kind is HeadEndRequestKind.METER_READ:
            body = cim_reads.encode_get_register(message_id, self.reply_topic, requests[0])
        else:
            verb = "cancel" if all(r.kind.value.startswith("cancel") for r in requests) else "create"
            body = cim.encode_controls(message_id, self.reply_topic, requests, self.issuer_id, verb)
        try:
            await client.publish(cim.topics(self.prefix)["request"], body, qos=1)
            async with asyncio.timeout(self.timeout_s):
                return await fut
        except (TimeoutError, aiomqtt.MqttError) as exc:
            self._waiting.pop(message_id, None)
            return [Ack(t, AckStatus.ERROR, f"transport: {type(exc).__name__}") for t in txids]


    async def read_intervals(self, esi_id: str, start: int, end: int, last_received: int | None) -> IntervalPage:
        """One ``get MeterReadings`` of interval data, answered at once on our reply topic
        (ams_adapters/wire/cim_reads.py). Raises `ReadRefused` (FAILED, broker away, no reply in
        time) and `WireError` (a malformed reply)."""
        client = self._client
        if client is None:
            raise ReadRefused("transport: broker not connected", retry_after_s=5.0)
        message_id = uuid.uuid4().hex
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._reads[message_id] = fut
        body = cim_reads.encode_get_intervals(message_id, self.reply_topic, esi_id, (start, end),
                                              last_received)
        try:
            await client.publish(cim.topics(self.prefix)["request"], body, qos=1)
            async with asyncio.timeout(self.timeout_s):
                payload = await fut
        except (TimeoutError, aiomqtt.MqttError) as exc:
            raise ReadRefused(f"transport: {type(exc).__name__}: no reply from the head-end",
                              retry_after_s=5.0) from None
        finally:
            self._reads.pop(message_id, None)
        return cim_reads.decode_intervals(payload, esi_id)


class InOrderAcks:
    """The PUBACKs of one connection, each sent once its message is stored and every message
    received before it is acknowledged (MQTT 5, 4.6: a client sends PUBACKs in the order the
    PUBLISHes came). A message not stored within the wait (or whose store failed) sets `stalled`:
    its connection is then dropped, and the broker resends what was not acknowledged on the next
    one."""

    def __init__(self, ack: Callable[[int, int], object]) -> None:
        self._ack = ack
        self._pending: deque[_Received] = deque()
        self._waits: set[asyncio.Task[None]] = set()
        self._closed = False
        self.stalled = asyncio.Event()
        self.sent = 0

    def received(self, mid: int, qos: int) -> _Received:
        entry = _Received(mid, qos)
        self._pending.append(entry)
        return entry

    def done(self, entry: _Received) -> None:
        entry.stored = True
        while self._pending and self._pending[0].stored and not self._closed:
            head = self._pending.popleft()
            if head.qos > 0:  # QoS 0 is never acknowledged
                self._ack(head.mid, head.qos)
                self.sent += 1

    def when_stored(self, entry: _Received, stored: Awaitable[None], wait_s: float) -> None:
        task = asyncio.get_running_loop().create_task(self._wait(entry, stored, wait_s))
        self._waits.add(task)
        task.add_done_callback(self._waits.discard)
        task.add_done_callback(functools.partial(close_unawaited, stored))

    async def _wait(self, entry: _Received, stored: Awaitable[None], wait_s: float) -> None:
        try:
            async with asyncio.timeout(wait_s):
                await stored
        except Exception as exc:  # not stored in time, or the store failed: left unacknowledged
            if not isinstance(exc, TimeoutError):
                log.warning("61968 message %d not stored: %s: %s", entry.mid, type(exc).__name__, exc)
            self.stalled.set()
            return
        self.done(entry)

    def close(self) -> None:
        """The connection is gone: nothing more is acknowledged on it (its paho message ids mean
        nothing on the next one, where the broker resends the unacknowledged messages)."""
        self._closed = True
        self._pending.clear()
        for task in self._waits:
            task.cancel()
