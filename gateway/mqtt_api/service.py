"""The MQTT API in the running gateway: its own role on the broker, the request listener and the
event publisher, started with the app (gateway/app.py) when `[mqtt_api] enabled`.

The broker may be down when the gateway starts: the REST API does not wait for it; the MQTT API
connects in the background, retrying with back-off, and logs why each attempt failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

from gateway.api.deps import Services
from gateway.config import MqttApiConfig
from gateway.mqtt_api.client import BrokerClient, BrokerError
from gateway.mqtt_api.dynsec import Dynsec, DynsecError
from gateway.mqtt_api.events import EventPublisher
from gateway.mqtt_api.requests import RequestListener
from gateway.mqtt_api.topics import Topics
from gateway.pipeline.dispatcher import Dispatcher
from gateway.store import events as event_log
from gateway.store import mqtt_credentials

log = logging.getLogger(__name__)


def admin_client(config: MqttApiConfig, purpose: str) -> BrokerClient:
    """A short-lived connection of the gateway's dynsec client (no session kept)."""
    return BrokerClient(config.host, config.port, client_id=f"{config.client_id}-{purpose}-{uuid.uuid4().hex[:8]}",
                        username=config.admin_username, password=config.admin_password,
                        timeout_s=config.timeout_seconds)


async def prepare_broker(config: MqttApiConfig) -> None:
    """The gateway's own role (everything under the topic root) on its own dynsec client."""
    topics = Topics(config.topic_root)
    client = admin_client(config, "setup")
    await client.connect()
    dynsec = Dynsec(client, config.timeout_seconds)
    try:
        await dynsec.start()
        await dynsec.ensure_role(topics.GATEWAY_ROLE, topics.gateway_acls(), "the HAN gateway's MQTT API")
        await dynsec.ensure_own_role(config.admin_username, topics.GATEWAY_ROLE)
    finally:
        await dynsec.close()
        await client.close()


class MqttApi:
    def __init__(self, svc: Services, config: MqttApiConfig, *, serve_requests: bool, publish_events: bool,
                 dispatcher: Callable[[], Dispatcher | None]) -> None:
        self._svc = svc
        self._config = config
        self._serve_requests = serve_requests
        self._publish_events = publish_events
        # A party with live broker credentials has an event channel: its delivery events are
        # written (the event log's cost rule), to be published here.
        event_log.register_event_channel(mqtt_credentials.with_live_credentials)
        self._dispatcher = dispatcher
        self.topics = Topics(config.topic_root)
        self.ready = asyncio.Event()
        self.client: BrokerClient | None = None
        self.listener: RequestListener | None = None
        self.publisher: EventPublisher | None = None
        self._task: asyncio.Task[None] | None = None
        self._publishing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            await self.client.close()

    async def _run(self) -> None:
        config = self._config
        delay = 0.5
        while True:
            try:
                await prepare_broker(config)
                client = BrokerClient(config.host, config.port, client_id=config.client_id,
                                      username=config.admin_username, password=config.admin_password,
                                      persistent=True, session_expiry_s=config.session_expiry_seconds,
                                      manual_ack=True, timeout_s=config.timeout_seconds)
                await client.connect()
                break
            except (BrokerError, DynsecError, TimeoutError) as exc:
                log.warning("MQTT API: broker %s:%s not ready (%s); retrying in %.1f s", config.host, config.port,
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.client = client
        if self._serve_requests:
            self.listener = RequestListener(self._svc, client, self.topics, config.admin_password, self._dispatcher)
            code = await client.subscribe(f"$share/{config.share_group}/{self.topics.every_party_requests}", qos=1)
            if code >= 0x80:
                log.error("MQTT API: the broker refused the requests subscription (reason %#x)", code)
        if self._publish_events:
            self.publisher = EventPublisher(self._svc.store, client, self.topics, self._svc.clock)
            self._publishing = asyncio.create_task(self.publisher.run())
        self.ready.set()
        log.info("MQTT API connected to %s:%s (topic root %s)", config.host, config.port, config.topic_root)
        if self.listener is not None:
            await self.listener.run()
