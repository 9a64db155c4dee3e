"""A third party's broker credentials: issued, rotated and revoked on the broker (a dynsec client
holding the party's role) and recorded in the store (only a hash of the password).

The broker is changed first and the store second, so that the store never names a credential the
broker does not have; a store failure after the broker created a client deletes that client again.
A revocation deletes the broker's client first: Mosquitto disconnects its connections at once.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from gateway.config import MqttApiConfig
from gateway.errors import Conflict, NotFound, Unavailable
from gateway.mqtt_api.dynsec import Dynsec
from gateway.mqtt_api.service import admin_client
from gateway.mqtt_api.topics import Topics
from gateway.store import mqtt_credentials
from gateway.store.mqtt_credentials import MqttCredential
from gateway.store.store import Store


@dataclass(frozen=True)
class Issued:
    credential: MqttCredential
    password: str  # shown once, stored nowhere
    revoked: list[str]  # usernames this rotation revoked


@asynccontextmanager
async def _dynsec(config: MqttApiConfig) -> AsyncIterator[Dynsec]:
    if not (config.admin_username and config.admin_password):
        raise Unavailable("[mqtt_api] admin_username and admin_password are not set: the gateway's dynsec "
                          "client administers the parties' broker credentials", code="mqtt_api_not_configured")
    client = admin_client(config, "admin")
    await client.connect()
    dynsec = Dynsec(client, config.timeout_seconds)
    try:
        await dynsec.start()
        yield dynsec
    finally:
        await dynsec.close()
        await client.close()


async def _party(store: Store, party_id: int) -> None:
    if await store.get_party(party_id) is None:
        raise NotFound(f"--party {party_id}: no such party", code="unknown_party")


async def issue(store: Store, config: MqttApiConfig, party_id: int, now: datetime, *, rotate: bool) -> Issued:
    """New credentials for the party; `rotate`: its live ones are revoked (without it, a party that
    has live credentials is refused: a second set would be forgotten, not rotated)."""
    await _party(store, party_id)
    live = await mqtt_credentials.live(store.engine, party_id)
    if live and not rotate:
        raise Conflict(f"party {party_id} has live MQTT credentials ({live[0].username}): use --rotate to replace "
                       "them or --revoke", code="mqtt_credentials_exist")
    topics = Topics(config.topic_root)
    username = f"hangw-party-{party_id}-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(32)  # 256 random bits
    async with _dynsec(config) as dynsec:
        role = topics.party_role(party_id)
        await dynsec.ensure_role(role, topics.party_acls(party_id), f"third party {party_id}")
        await dynsec.create_client(username, password, role, f"third party {party_id}")
        try:
            credential = await mqtt_credentials.record(store.engine, party_id=party_id, username=username,
                                                       password=password, now=now, revoke=[c.id for c in live])
        except BaseException:
            await dynsec.delete_client(username)
            raise
        for old in live:
            await dynsec.delete_client(old.username)
    return Issued(credential, password, [c.username for c in live])


async def revoke(store: Store, config: MqttApiConfig, party_id: int, now: datetime) -> list[str]:
    """Revoke every live credential of the party: deleted on the broker (its connections dropped),
    then marked revoked. The usernames revoked."""
    await _party(store, party_id)
    live = await mqtt_credentials.live(store.engine, party_id)
    if not live:
        raise NotFound(f"party {party_id} has no live MQTT credentials", code="no_mqtt_credentials")
    async with _dynsec(config) as dynsec:
        for credential in live:
            await dynsec.delete_client(credential.username)
    await mqtt_credentials.revoke(store.engine, [c.id for c in live], now)
    return [c.username for c in live]
