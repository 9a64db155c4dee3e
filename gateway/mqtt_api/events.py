"""Events to MQTT: every party with live broker credentials gets its events (table `party_events`,
gateway/store/events.py) on `…/parties/<id>/events/<type>` at QoS 1, the body exactly as the
webhooks send it (the same `id`), and each request's latest event retained on its state topic.

One instance at a time publishes a party's events, from the party's cursor (table
`mqtt_event_cursors`, gateway/store/mqtt_event_cursors.py): the cursor row is claimed with a lease
(the outboxes' row claims, gateway/store/row_claims.py), the events after it are published in id
order, each acknowledged by the broker (PUBACK) before the cursor moves past it, and the cursor is
moved only by the claim that holds it (fenced). An instance that dies after publishing and before
moving the cursor leaves the events to be published again by the next claim: a subscriber may see
an event twice (the same `id`: drop what it has seen), never miss one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import timedelta

from gateway.clock import Clock
from gateway.mqtt_api.client import BrokerClient, BrokerError
from gateway.mqtt_api.topics import Topics
from gateway.store import events as event_log
from gateway.store import mqtt_event_cursors
from gateway.store.store import Store

log = logging.getLogger(__name__)


class EventPublisher:
    def __init__(self, store: Store, client: BrokerClient, topics: Topics, clock: Clock, *,
                 interval_s: float = 0.25, lease_s: float = 30.0, batch: int = 200) -> None:
        self._store = store
        self._client = client
        self._topics = topics
        self._clock = clock
        self._interval_s = interval_s
        self._lease = timedelta(seconds=lease_s)
        self._batch = batch
        self._holder = uuid.uuid4().hex[:16]
        self._wake = asyncio.Event()
        self.published = 0

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.publish_due()
            except BrokerError as exc:
                log.warning("MQTT events: broker unavailable (%s); the cursors wait", exc)
            except Exception:  # a failed pass is logged and retried at the next tick
                log.exception("MQTT events pass failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()

    async def publish_due(self) -> int:
        """One pass: claim the cursors of parties with new events and publish them. Events sent."""
        sent = 0
        now = self._clock.now()
        claimed = await mqtt_event_cursors.claim(self._store.engine, now=now, lease_until=now + self._lease,
                                                 holder=self._holder, limit=50)
        for cursor in claimed:
            last = cursor.last_event_id
            try:
                while True:
                    found = await event_log.events_after(self._store.engine, cursor.party_id, last, self._batch)
                    for event in found:
                        await self._publish(cursor.party_id, event)
                        last = event.id
                        sent += 1
                    if len(found) < self._batch:
                        break
            finally:
                # The cursor moves past what the broker acknowledged, and is due again at once.
                await mqtt_event_cursors.finish(self._store.engine, cursor, last_event_id=last,
                                                now=self._clock.now())
        self.published += sent
        return sent

    async def _publish(self, party_id: int, event: event_log.Event) -> None:
        payload = event.body.encode()
        properties = {"event-id": str(event.id), "event-type": event.type}
        await self._client.publish(self._topics.event(party_id, event.type), payload, qos=1,
                                   user_properties=properties)
        request_id = json.loads(event.body).get("request_id")
        if isinstance(request_id, int) and event.subject == event_log.subject_of_request(request_id):
            # The request's latest event, retained: a dashboard that subscribes later sees it at once.
            await self._client.publish(self._topics.state(party_id, request_id), payload, qos=1, retain=True,
                                       user_properties=properties)
