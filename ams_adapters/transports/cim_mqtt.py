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

A ``han_inventory`` request travels as ``get EndDevices`` (ams_adapters/wire/cim.py): its
acknowledgement answers `send`, and the data reply that follows on the same reply topic becomes an
``inventory`` notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import Awaitable, Sequence

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ams_adapters.adapter import NotesSink
from ams_adapters.contract import ContractError
from ams_adapters.pacing import Backoff
from ams_adapters.wire import cim
from ams_adapters.wire.common import Ack, AckStatus, HeadEndRequest, HeadEndRequestKind, WireError

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
        self._on_notes: NotesSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(0.05, 1.0)
        self.connects = 0
        self.refused = 0

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
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                          protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                                          properties=self._connect_properties(),
                                          timeout=self.timeout_s) as client:
                    await client.subscribe(self.reply_topic, qos=1)
                    await client.subscribe(self.events_filter, qos=1)
                    self._client = client
                    self.connects += 1
                    attempt = 0
                    self._ready.set()
                    async for msg in client.messages:
                        self._on_message(str(msg.topic), bytes(msg.payload))
            except aiomqtt.MqttError as exc:
                log.info("broker %s:%s connection lost: %s", self.host, self.port, exc)
            finally:
                self._client = None
                self._ready.clear()
                self._fail_waiting("transport: broker connection lost")
            attempt += 1
            await asyncio.sleep(self._backoff.delay(min(attempt, 6)) + 0.02)

    def _connect_properties(self) -> Properties:
        # MQTT 5: the session outlives the connection by this long (0 would end it at once).
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        return props

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            if topic == self.reply_topic:
                h, root = cim.parse(payload)
                inventory = cim.end_devices_note(h, root) if h.noun == "EndDevices" else None
                if inventory is not None:
                    if self._on_notes is not None:
                        _taken(self._on_notes([inventory]))
                    return
                entry = self._waiting.pop(h.correlation_id or "", None)
                if entry is not None and not entry[1].done():
                    _, acks = cim.decode_reply(payload, entry[0])
                    entry[1].set_result(acks)
            else:
                notes = cim.decode_events(payload)
                if notes and self._on_notes is not None:
                    _taken(self._on_notes(notes))
        except WireError as exc:
            self.refused += 1
            log.warning("61968 message on %s refused: %s", topic, exc)

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


def _taken(stored: Awaitable[None] | None) -> None:
    """This transport's client acknowledges a QoS 1 message when it is received, not when it is
    stored (manual acknowledgement is not wired up), so there is nothing to wait for here: a gateway
    killed between the two loses that message (the gateway's bound on `submitted` then ends its item
    `unknown`)."""
    if inspect.iscoroutine(stored):
        stored.close()
