"""HAN requests over MQTT 5: a party publishes the body of `POST /v1/han-requests` to its requests
topic with a ResponseTopic (under its own `…/responses/`) and CorrelationData; the gateway answers
there with what REST answers (the 202 summary or the problem document), through the same function
(gateway/api/submission.py), and keeps the request's latest summary retained on its state topic.

- **Not lost while the gateway restarts.** The gateway's session is persistent (clean start off, a
  session expiry) and its subscription QoS 1: the broker keeps what is published meanwhile. A
  request is acknowledged (PUBACK, manual) only after its answer is committed and published; a
  gateway killed before that gets it again, and the Idempotency-Key (the `Idempotency-Key` user
  property, else the CorrelationData) replays the committed answer instead of accepting it twice.
- **One party after the other, in order**: each party's requests are handled in the order they
  arrived (a cancellation after its text), parties side by side.
- A message without a ResponseTopic (MQTT 3.1.1 has none) or with one outside the party's
  responses is not processed: there is nowhere the gateway may answer (docs/third-party-api.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable

from gateway.api.deps import Services
from gateway.api.problems import Unauthorized, error_body
from gateway.api.submission import SubmissionReply, content_type, submit_han_request
from gateway.domain.model import PartyStatus, Role
from gateway.domain.records import Principal
from gateway.mqtt_api.client import BrokerClient, BrokerError, Received
from gateway.mqtt_api.topics import Topics
from gateway.pipeline.dispatcher import Dispatcher
from gateway.store import mqtt_credentials

log = logging.getLogger(__name__)

IDEMPOTENCY_PROPERTY = "Idempotency-Key"


class RequestListener:
    def __init__(self, svc: Services, client: BrokerClient, topics: Topics, key_secret: str,
                 dispatcher: Callable[[], Dispatcher | None]) -> None:
        self._svc = svc
        self._client = client
        self._topics = topics
        self._key_secret = key_secret
        self._dispatcher = dispatcher
        self._queues: dict[int, asyncio.Queue[Received]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self.answered = 0
        self.dropped = 0

    async def run(self) -> None:
        """Route each received request to its party's worker (until cancelled)."""
        try:
            while True:
                message = await self._client.messages.get()
                party_id = self._topics.party_of_request_topic(message.topic)
                if party_id is None:
                    self._client.ack(message)
                    continue
                queue = self._queues.get(party_id)
                if queue is None:
                    queue = self._queues[party_id] = asyncio.Queue()
                    self._workers[party_id] = asyncio.create_task(self._work(party_id, queue))
                queue.put_nowait(message)
        finally:
            for task in self._workers.values():
                task.cancel()
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def _work(self, party_id: int, queue: asyncio.Queue[Received]) -> None:
        while True:
            message = await queue.get()
            while True:
                try:
                    await self._handle(party_id, message)
                    break
                except BrokerError as exc:  # answer not published: not acknowledged, tried again
                    log.warning("MQTT answer to party %s not published (%s); retrying", party_id, exc)
                    await asyncio.sleep(1.0)
                except Exception:  # a bug must not stop the party's queue; the message is dropped
                    log.exception("MQTT request of party %s on %s failed", party_id, message.topic)
                    self._client.ack(message)
                    break

    async def _handle(self, party_id: int, message: Received) -> None:
        response_topic = message.response_topic
        if response_topic is None or not self._topics.may_answer_on(party_id, response_topic):
            self.dropped += 1
            log.info("MQTT request of party %s dropped: ResponseTopic %r is not under %s", party_id,
                     response_topic, self._topics.responses_prefix(party_id))
            self._client.ack(message)
            return
        reply = await self._submit(party_id, message)
        properties = {"status": str(reply.status), **reply.headers}
        await self._client.publish(response_topic, json.dumps(reply.body).encode(), qos=1,
                                   correlation_data=message.correlation_data, user_properties=properties,
                                   content_type=content_type(reply))
        if reply.accepted:
            # The request's summary, retained for a dashboard (its later states follow its events).
            await self._client.publish(self._topics.state(party_id, int(reply.body["id"])),
                                       json.dumps({**reply.body, "state": "accepted"}).encode(), qos=1,
                                       retain=True)
        self._client.ack(message)
        self.answered += 1

    async def _submit(self, party_id: int, message: Received) -> SubmissionReply:
        svc = self._svc
        party = await svc.store.get_party(party_id)
        # The broker let the message in by the party's credentials; they may have been revoked, or
        # the party suspended, since it was queued.
        if (party is None or party.status is not PartyStatus.ACTIVE
                or not await mqtt_credentials.party_has_mqtt_credentials(svc.store.engine, party_id)):
            exc = Unauthorized(f"party {party_id} has no live MQTT credentials or is suspended")
            return SubmissionReply(exc.status, error_body(exc, message.topic))
        who = Principal(role=Role.THIRD_PARTY, party_id=party_id)
        key = message.user_properties.get(IDEMPOTENCY_PROPERTY)
        if key is None and message.correlation_data:
            # Hashed: CorrelationData may be longer than a key may be (and binary).
            key = "correlation:" + hashlib.sha256(message.correlation_data).hexdigest()
        reply = await submit_han_request(
            svc, who, message.payload, instance=message.topic, idempotency_key=key, key_secret=self._key_secret,
            scope=f"mqtt-party:{party_id}", dispatcher=self._dispatcher())
        if reply.accepted:
            dispatcher = self._dispatcher()
            if dispatcher is not None:
                dispatcher.poke()
        return reply

