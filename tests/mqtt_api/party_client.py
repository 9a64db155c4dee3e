"""A third party's MQTT client, as a third party would write it: paho-mqtt, MQTT 5 (or 3.1.1)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class Refused(Exception):
    pass


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    correlation_data: bytes | None
    user_properties: dict[str, str] = field(default_factory=dict)


class PartyClient:
    def __init__(self, host: str, port: int, username: str, password: str, *, v5: bool = True) -> None:
        self._c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"party-{uuid.uuid4().hex[:8]}",
                              protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        self._c.username_pw_set(username, password)
        self.host, self.port = host, port
        self.messages: queue.Queue[Message] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._cond = threading.Condition()
        self._connack: Any = None
        self._c.on_connect = self._on_connect
        self._c.on_message = self._on_message
        self._c.on_subscribe = self._on_subscribe
        self._c.on_publish = self._on_publish

    def connect(self, timeout: float = 5.0) -> None:
        """Connect; Refused with the broker's reason if it refuses."""
        self._c.connect(self.host, self.port)
        self._c.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connack is not None, timeout)
        if self._connack is None or self._connack.is_failure:
            self._c.loop_stop()
            raise Refused(str(self._connack))

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def subscribe(self, topic_filter: str, timeout: float = 5.0) -> int:
        """The SUBACK's reason code for the filter (0x80 and above: refused)."""
        _, mid = self._c.subscribe(topic_filter, qos=1)
        return int(self._wait(mid, timeout))

    def publish(self, topic: str, body: Any, *, response_topic: str | None = None,
                correlation: bytes | None = None, user_properties: dict[str, str] | None = None,
                timeout: float = 5.0) -> int:
        """Publish at QoS 1; the PUBACK's reason code (MQTT 5; 0 on 3.1.1)."""
        props = None
        if self._c.protocol == paho.MQTTv5:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
            if user_properties:
                props.UserProperty = list(user_properties.items())
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self._c.publish(topic, payload, qos=1, properties=props)
        return int(self._wait(info.mid, timeout))

    def next_message(self, timeout: float = 10.0) -> Message:
        return self.messages.get(timeout=timeout)

    def _wait(self, mid: int, timeout: float) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, timeout):
                raise TimeoutError(f"no acknowledgement of message {mid}")
            return self._acks.pop(mid)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._cond:
            self._connack = reason
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        self.messages.put(Message(msg.topic, bytes(msg.payload), bool(msg.retain),
                                  getattr(props, "CorrelationData", None),
                                  dict(getattr(props, "UserProperty", None) or [])))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        with self._cond:
            self._acks[mid] = reasons[0].value
            self._cond.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._cond:
            self._acks[mid] = reason.value
            self._cond.notify_all()
