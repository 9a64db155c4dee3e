"""The MQTT API's one connection type: a paho-mqtt 2.x client behind an asyncio face.

Hand-written over paho rather than aiomqtt (the project's MQTT library elsewhere): aiomqtt 2.x has
no manual acknowledgement, and the MQTT API must acknowledge a request only after it is stored (a
request the gateway dies with is redelivered from its persistent session). paho runs its network
loop in its own thread; every callback hands over to the event loop with `call_soon_threadsafe`.
This is the only module of `gateway.mqtt_api` that touches paho.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)


class BrokerError(Exception):
    """The broker refused or could not be reached; `reason` is its reason (code name) or the error."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"MQTT broker {where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    response_topic: str | None
    correlation_data: bytes | None
    user_properties: dict[str, str]


class BrokerClient:
    """One MQTT 5 connection. `persistent`: clean_start off and a session expiry, so the broker keeps
    our subscriptions and the QoS 1 messages meant for us while we are away; `manual_ack`: a
    received QoS 1 message is acknowledged by `ack`, not on receipt."""

    def __init__(self, host: str, port: int, *, client_id: str, username: str, password: str,
                 persistent: bool = False, session_expiry_s: int = 0, manual_ack: bool = False,
                 timeout_s: float = 5.0) -> None:
        self.where = f"{host}:{port} as {username!r}"
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._persistent, self._session_expiry_s = persistent, session_expiry_s
        self._paho = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                 protocol=paho.MQTTv5, manual_ack=manual_ack)
        self._paho.username_pw_set(username, password)
        self._paho.reconnect_delay_set(1, 5)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: list[tuple[str, int]] = []
        self.messages: asyncio.Queue[Received] = asyncio.Queue()
        self.on_reconnect: Callable[[], None] | None = None
        self._resubscribing: asyncio.Future[None] | None = None
        self.connects = 0
        self.disconnected_because: str | None = None  # the last disconnection's reason, until reconnected
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_message = self._on_message
        # paho leaves Nagle's algorithm on: a small PUBLISH then waits for the broker's delayed ACK
        # (~40 ms a hop; benchmarks.mqtt: 16 -> 75 round trips/s with it off).
        self._paho.on_socket_open = tcp_no_delay
        self._paho.on_publish = self._on_publish
        self._paho.on_subscribe = self._on_subscribe

    # -- life ---------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect (paho reconnects by itself afterwards); BrokerError if refused or unreachable."""
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if self._session_expiry_s:
            props.SessionExpiryInterval = self._session_expiry_s
        try:
            self._paho.connect_async(self.host, self.port, keepalive=30, clean_start=not self._persistent,
                                     properties=props)
        except OSError as exc:
            raise BrokerError(self.where, str(exc)) from None
        self._paho.loop_start()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._connected
        except TimeoutError:
            await self.close()
            raise BrokerError(self.where, f"no CONNACK within {self.timeout_s} s") from None
        except BrokerError:
            await self.close()
            raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._paho.disconnect()
        await asyncio.to_thread(self._paho.loop_stop)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BrokerError(self.where, "closed"))
        self._pending.clear()

    @property
    def connected(self) -> bool:
        """Is the connection up now (paho's view: CONNACK received, no disconnection since)?"""
        return bool(self._paho.is_connected())

    # -- operations ---------------------------------------------------------------------------
    async def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        """Subscribe (again after each reconnect); the broker's granted QoS or failure code (≥ 0x80)."""
        if (topic_filter, qos) not in self._subscriptions:
            self._subscriptions.append((topic_filter, qos))
        fut = self._call_future()
        result, mid = self._paho.subscribe(topic_filter, qos=qos)
        return int(await self._await(result, mid or 0, fut, "SUBACK"))

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      response_topic: str | None = None, correlation_data: bytes | None = None,
                      user_properties: dict[str, str] | None = None,
                      content_type: str = "application/json") -> None:
        """Publish; at QoS 1 return once the broker acknowledged it (PUBACK)."""
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation_data is not None:
            props.CorrelationData = correlation_data
        if user_properties:
            props.UserProperty = list(user_properties.items())
        props.PayloadFormatIndicator = 1  # UTF-8 JSON
        props.ContentType = content_type
        fut = self._call_future()
        info = self._paho.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos == 0:
            fut.cancel()
            return
        await self._await(info.rc, info.mid, fut, "PUBACK")

    async def _subscribe_all(self) -> None:
        for topic_filter, qos in list(self._subscriptions):
            with contextlib.suppress(BrokerError):
                await self.subscribe(topic_filter, qos)

    async def resubscribed(self) -> None:
        """Wait until the subscriptions of the last reconnection are confirmed."""
        if self._resubscribing is not None:
            await self._resubscribing

    def ack(self, message: Received) -> None:
        """Acknowledge a QoS 1 message received with manual_ack (after it is stored)."""
        if message.qos > 0:
            self._paho.ack(message.mid, message.qos)

    # -- plumbing -----------------------------------------------------------------------------
    def _call_future(self) -> asyncio.Future[Any]:
        assert self._loop is not None, "connect() first"
        return self._loop.create_future()

    async def _await(self, rc: int, mid: int, fut: asyncio.Future[Any], what: str) -> Any:
        if rc != paho.MQTT_ERR_SUCCESS:
            raise BrokerError(self.where, f"{what}: {paho.error_string(rc)}")
        # Registered before the first await: paho's callback reaches the loop only through
        # call_soon_threadsafe, so it cannot run before this line.
        self._pending[mid] = fut
        try:
            async with asyncio.timeout(self.timeout_s):
                return await fut
        except TimeoutError:
            raise BrokerError(self.where, f"no {what} within {self.timeout_s} s") from None
        finally:
            self._pending.pop(mid, None)

    def _resolve(self, mid: int, value: Any) -> None:
        # Network thread: hand over to the event loop.
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._resolve_in_loop, mid, value)

    def _resolve_in_loop(self, mid: int, value: Any) -> None:
        fut = self._pending.get(mid)
        if fut is not None and not fut.done():
            if isinstance(value, BaseException):
                fut.set_exception(value)
            else:
                fut.set_result(value)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        failed = reason.is_failure
        loop.call_soon_threadsafe(self._connected_in_loop, None if not failed else str(reason))

    def _connected_in_loop(self, refused: str | None) -> None:
        fut = self._connected
        if refused is not None:
            if fut is not None and not fut.done():
                fut.set_exception(BrokerError(self.where, refused))
            else:
                log.warning("MQTT broker %s refused the reconnection: %s", self.where, refused)
            return
        self.connects += 1
        self.disconnected_because = None
        if fut is not None and not fut.done():
            fut.set_result(None)
        elif self._subscriptions:  # a reconnection: subscribe again (the session may have expired)
            self._resubscribing = asyncio.ensure_future(self._subscribe_all())
        if self.on_reconnect is not None and self.connects > 1:
            self.on_reconnect()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Any) -> None:
        log.info("MQTT broker %s: disconnected (%s)", self.where, reason)
        self.disconnected_because = str(reason)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        received = Received(
            topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos, mid=msg.mid, retain=bool(msg.retain),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation_data=getattr(props, "CorrelationData", None),
            user_properties=dict(getattr(props, "UserProperty", None) or []))
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.messages.put_nowait, received)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Any) -> None:
        self._resolve(mid, BrokerError(self.where, f"PUBACK {reason}") if reason.is_failure else None)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Any) -> None:
        self._resolve(mid, reasons[0].value if reasons else 0x80)


def tcp_no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Send small MQTT packets at once (TCP_NODELAY), as Mosquitto's `set_tcp_nodelay` does its side."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
