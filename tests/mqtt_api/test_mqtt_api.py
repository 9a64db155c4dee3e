"""The MQTT API from the outside: a third party's paho client against a real Mosquitto with the
dynamic-security plugin, and a running gateway (REST beside it for comparison)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from gateway.mqtt_api import credentials
from gateway.mqtt_api.topics import Topics
from sandbox.dynsec_broker import DynsecBroker
from tests.gateway.conftest import ONCOR, Gateway
from tests.mqtt_api.conftest import mqtt_gateway
from tests.mqtt_api.party_client import Message, PartyClient, Refused

NOT_AUTHORIZED = 0x87  # MQTT 5 reason code: SUBACK / PUBACK refused by the broker's ACL


async def _party_with_mqtt(gw: Gateway, broker: DynsecBroker, name: str, duns: str,
                           *, agreement: bool = True) -> tuple[int, str, PartyClient]:
    party_id, token = await gw.new_party(name, duns)
    if agreement:
        await gw.active_agreement(token, ONCOR, "MTR-1", "alice@example.test")
    issued = await credentials.issue(gw.store, gw.config.mqtt_api, party_id, gw.clock.now(), rotate=False)
    client = PartyClient(broker.host, broker.port, issued.credential.username, issued.password)
    await asyncio.to_thread(client.connect)
    return party_id, token, client


async def _ask(client: PartyClient, topics: Topics, party_id: int, body: object, *,
               correlation: bytes | None = None, response_topic: str | None = None) -> Message:
    """Publish a request and wait for the answer carrying its correlation data."""
    correlation = correlation or uuid.uuid4().bytes
    response_topic = response_topic or f"{topics.responses_prefix(party_id)}mine"
    assert await asyncio.to_thread(client.subscribe, f"{topics.responses_prefix(party_id)}#") == 1
    assert await asyncio.to_thread(client.publish, topics.requests(party_id), body,
                                   response_topic=response_topic, correlation=correlation) == 0
    while True:
        message = await asyncio.to_thread(client.next_message, 15.0)
        if message.topic == response_topic and message.correlation_data == correlation:
            return message


async def test_request_answered_as_rest_answers(tmp_path: Path, broker: DynsecBroker) -> None:
    async with mqtt_gateway(tmp_path / "gw", broker) as gw:
        await gw.load_premises()
        party_id, token, client = await _party_with_mqtt(gw, broker, "Acme", "123456789")
        topics = Topics(gw.config.mqtt_api.topic_root)
        try:
            state_sub = await asyncio.to_thread(client.subscribe, f"{topics.requests(party_id)}/+/state")
            assert state_sub == 1
            text = {"kind": "text", "esi_ids": [ONCOR], "text": "Peak prices 4-7 pm"}
            answer = await _ask(client, topics, party_id, text)
            assert answer.user_properties["status"] == "202"
            accepted = json.loads(answer.payload)
            rest = await gw.client.post("/v1/han-requests", headers=gw.auth(token), json=text)
            assert rest.status_code == 202
            # The same summary as REST: the same fields, the next id, the same targets.
            assert set(accepted) == set(rest.json())
            assert rest.json()["id"] == accepted["id"] + 1
            assert (accepted["kind"], accepted["targeted"], accepted["excluded"]) == ("text", 1, [])
            # The request is the party's own, as REST sees it.
            got = await gw.client.get(f"/v1/han-requests/{accepted['id']}", headers=gw.auth(token))
            assert got.status_code == 200 and got.json()["request"]["text"] == "Peak prices 4-7 pm"
            # Its summary is retained on its state topic.
            state = await asyncio.to_thread(client.next_message, 10.0)
            while state.topic != topics.state(party_id, accepted["id"]):
                state = await asyncio.to_thread(client.next_message, 10.0)
            assert json.loads(state.payload)["id"] == accepted["id"]

            # A bad body: the same 422 problem as REST, the field named.
            bad = {"kind": "text", "esi_ids": [ONCOR], "text": "x" * 400}
            problem = await _ask(client, topics, party_id, bad)
            rest_problem = (await gw.client.post("/v1/han-requests", headers=gw.auth(token), json=bad)).json()
            assert problem.user_properties["status"] == "422"
            body = json.loads(problem.payload)
            assert body["status"] == 422 and body["code"] == rest_problem["code"]
            assert body["errors"] == rest_problem["errors"] and body["errors"][0]["field"] == "text"
            assert body["instance"] == topics.requests(party_id)

            # Not JSON at all: invalid_json, as REST.
            garbage = await _ask(client, topics, party_id, b"{not json")
            assert json.loads(garbage.payload)["code"] == "invalid_json"

            # The correlation data is the idempotency key: a redelivered request is answered again,
            # not accepted twice.
            correlation = uuid.uuid4().bytes
            first = await _ask(client, topics, party_id, {**text, "text": "once"}, correlation=correlation)
            again = await _ask(client, topics, party_id, {**text, "text": "once"}, correlation=correlation)
            assert json.loads(again.payload)["id"] == json.loads(first.payload)["id"]
            assert again.user_properties.get("Idempotent-Replayed") == "true"
        finally:
            client.close()


async def test_the_broker_refuses_another_partys_topics(tmp_path: Path, broker: DynsecBroker) -> None:
    async with mqtt_gateway(tmp_path / "gw", broker) as gw:
        await gw.load_premises()
        a_id, a_token, a = await _party_with_mqtt(gw, broker, "Acme", "123456789")
        b_id, b_token, b = await _party_with_mqtt(gw, broker, "Bolt", "987654321", agreement=False)
        topics = Topics(gw.config.mqtt_api.topic_root)
        try:
            # Subscribing to A's topics, or to everything: SUBACK "not authorized".
            for topic_filter in (f"{topics.party(a_id)}/events/#", f"{topics.requests(a_id)}/+/state",
                                 f"{topics.responses_prefix(a_id)}#", f"{topics.root}/#", "#"):
                assert await asyncio.to_thread(b.subscribe, topic_filter) == NOT_AUTHORIZED, topic_filter
            # Publishing a request as A: PUBACK "not authorized", and the message goes nowhere.
            text = {"kind": "text", "esi_ids": [ONCOR], "text": "from B, as A"}
            assert await asyncio.to_thread(a.subscribe, f"{topics.responses_prefix(a_id)}#") == 1
            refused = await asyncio.to_thread(b.publish, topics.requests(a_id), text,
                                              response_topic=f"{topics.responses_prefix(a_id)}x",
                                              correlation=b"b")
            assert refused == NOT_AUTHORIZED
            # B's own request is answered on B's own topic, and refused as REST refuses it: B has no
            # agreement at A's customer's premise.
            own = await _ask(b, topics, b_id, text)
            rest = await gw.client.post("/v1/han-requests", headers=gw.auth(b_token), json=text)
            assert own.user_properties["status"] == str(rest.status_code) == "403"
            assert json.loads(own.payload)["code"] == rest.json()["code"]
            # A request of B's that points the answer at A's responses gets no answer at all.
            await asyncio.to_thread(b.publish, topics.requests(b_id), text,
                                    response_topic=f"{topics.responses_prefix(a_id)}stolen", correlation=b"s")
            await asyncio.sleep(1.0)
            assert a.messages.empty()
            listing = await gw.client.get("/v1/audit", headers=gw.auth(a_token))
            assert all(e.get("principal_party_id", a_id) == a_id for e in listing.json().get("items", []))
        finally:
            a.close()
            b.close()


async def test_revoked_and_rotated_credentials_cannot_connect(tmp_path: Path, broker: DynsecBroker) -> None:
    async with mqtt_gateway(tmp_path / "gw", broker) as gw:
        party_id, _ = await gw.new_party("Acme", "123456789")
        cfg = gw.config.mqtt_api
        first = await credentials.issue(gw.store, cfg, party_id, gw.clock.now(), rotate=False)
        old = PartyClient(broker.host, broker.port, first.credential.username, first.password)
        await asyncio.to_thread(old.connect)
        rotated = await credentials.issue(gw.store, cfg, party_id, gw.clock.now(), rotate=True)
        assert rotated.revoked == [first.credential.username]
        try:
            await asyncio.to_thread(PartyClient(broker.host, broker.port, first.credential.username,
                                                first.password).connect)
            raise AssertionError("the rotated-away password still connects")
        except Refused as exc:
            assert "Not authorized" in str(exc)
        new = PartyClient(broker.host, broker.port, rotated.credential.username, rotated.password)
        await asyncio.to_thread(new.connect)
        assert await asyncio.to_thread(new.subscribe, f"{Topics(cfg.topic_root).party(party_id)}/events/#") == 1
        assert await credentials.revoke(gw.store, cfg, party_id, gw.clock.now()) == [rotated.credential.username]
        try:
            await asyncio.to_thread(PartyClient(broker.host, broker.port, rotated.credential.username,
                                                rotated.password).connect)
            raise AssertionError("a revoked password still connects")
        except Refused as exc:
            assert "Not authorized" in str(exc)
        old.close()
        new.close()
        # The broker dropped the revoked client's live connection too.
        assert "disconnected by administrative action" in broker.log()


async def test_request_published_while_the_gateway_is_down_is_answered(tmp_path: Path, broker: DynsecBroker) -> None:
    from tests.mqtt_api.conftest import mqtt_section

    section = mqtt_section(broker)
    data = tmp_path / "gw"
    async with mqtt_gateway(data, broker, mqtt_api=section) as gw:
        await gw.load_premises()
        party_id, token, client = await _party_with_mqtt(gw, broker, "Acme", "123456789")
        topics = Topics(gw.config.mqtt_api.topic_root)
        assert (await _ask(client, topics, party_id, {"kind": "text", "esi_ids": [ONCOR], "text": "up"})
                ).user_properties["status"] == "202"
    # The gateway is down: the request waits in its persistent session on the broker.
    correlation = uuid.uuid4().bytes
    body = {"kind": "text", "esi_ids": [ONCOR], "text": "sent while down"}
    assert await asyncio.to_thread(client.publish, topics.requests(party_id), body,
                                   response_topic=f"{topics.responses_prefix(party_id)}r",
                                   correlation=correlation) == 0
    async with mqtt_gateway(data, broker, mqtt_api=section, reuse=True) as gw:
        answer = await asyncio.to_thread(client.next_message, 20.0)
        while answer.correlation_data != correlation:
            answer = await asyncio.to_thread(client.next_message, 20.0)
        assert answer.user_properties["status"] == "202"
        request_id = json.loads(answer.payload)["id"]
        got = await gw.client.get(f"/v1/han-requests/{request_id}", headers=gw.auth(token))
        assert got.json()["request"]["text"] == "sent while down"
    client.close()


async def test_events_arrive_with_the_webhooks_ids_and_only_to_their_party(tmp_path: Path,
                                                                           broker: DynsecBroker) -> None:
    async with mqtt_gateway(tmp_path / "gw", broker) as gw:
        await gw.load_premises()
        a_id, a_token, a = await _party_with_mqtt(gw, broker, "Acme", "123456789", agreement=False)
        b_id, _b_token, b = await _party_with_mqtt(gw, broker, "Bolt", "987654321", agreement=False)
        topics = Topics(gw.config.mqtt_api.topic_root)
        try:
            assert await asyncio.to_thread(a.subscribe, f"{topics.party(a_id)}/events/#") == 1
            assert await asyncio.to_thread(b.subscribe, f"{topics.party(b_id)}/events/#") == 1
            # A's customer is invited and accepts: the agreement's events, over MQTT.
            await gw.active_agreement(a_token, ONCOR, "MTR-1", "alice@example.test")
            got: list[Message] = []
            while len(got) < 2:
                got.append(await asyncio.to_thread(a.next_message, 15.0))
            feed = (await gw.client.get("/v1/events", headers=gw.auth(a_token))).json()["items"]
            assert [m.topic for m in got] == [topics.event(a_id, e["type"]) for e in feed]
            # The body exactly as the event log (and so the webhooks) has it, with the same id.
            assert [json.loads(m.payload) for m in got] == [e["event"] for e in feed]
            assert [m.user_properties["event-id"] for m in got] == [str(e["id"]) for e in feed]
            assert {e["type"] for e in feed} >= {"agreement.accepted"}
            # Each published once, and none to B.
            await asyncio.sleep(1.0)
            assert a.messages.empty() and b.messages.empty()
        finally:
            a.close()
            b.close()


async def test_two_instances_publish_each_event_once(tmp_path: Path, broker: DynsecBroker,
                                                     migrated_pg_url: str) -> None:
    """Two gateways on one PostgreSQL, both publishing events: each event reaches the party once."""
    from tests.mqtt_api.conftest import mqtt_section

    first = mqtt_section(broker)
    second = {**first, "client_id": first["client_id"] + "-b"}
    async with mqtt_gateway(tmp_path / "a", broker, mqtt_api=first, storage={"url": migrated_pg_url}) as gw, \
            mqtt_gateway(tmp_path / "b", broker, mqtt_api=second, storage={"url": migrated_pg_url}):
        await gw.load_premises()
        party_id, token, client = await _party_with_mqtt(gw, broker, "Acme", "123456789", agreement=False)
        topics = Topics(gw.config.mqtt_api.topic_root)
        try:
            assert await asyncio.to_thread(client.subscribe, f"{topics.party(party_id)}/events/#") == 1
            for email, meter, esi in (("alice@example.test", "MTR-1", ONCOR),
                                      ("alice@example.test", "MTR-2", "10443720000000002")):
                await gw.active_agreement(token, esi, meter, email)
            feed = (await gw.client.get("/v1/events", headers=gw.auth(token))).json()["items"]
            assert len(feed) >= 4
            got = [await asyncio.to_thread(client.next_message, 15.0) for _ in feed]
            await asyncio.sleep(1.5)  # anything published twice would be here by now
            assert client.messages.empty()
            # Once each, in id order, whichever instance held the party's cursor.
            assert [int(m.user_properties["event-id"]) for m in got] == [e["id"] for e in feed]
        finally:
            client.close()
