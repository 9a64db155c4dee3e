"""Third parties' broker credentials for the MQTT API (table `mqtt_credentials`): which usernames
the gateway issued on the operator's broker, and a hash of each password (never the password).

The broker holds the same username with its own salted hash (Mosquitto dynsec); this table is the
gateway's record of who holds live credentials (`party_has_mqtt_credentials`), what to delete on
the broker at a rotation or revocation, and an audit of when each was issued and revoked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import mqtt_event_cursors
from gateway.store.schema import mqtt_credentials


@dataclass(frozen=True)
class MqttCredential:
    id: int
    party_id: int
    username: str
    created_at: datetime
    revoked_at: datetime | None


def hash_password(password: str) -> str:
    # The passwords carry 256 random bits (gateway/mqtt_api/credentials.py): a fast hash is enough.
    return hashlib.sha256(password.encode()).hexdigest()


def _row(row: sa.Row[tuple[object, ...]]) -> MqttCredential:
    m = row._mapping
    return MqttCredential(m["id"], m["party_id"], m["username"], m["created_at"], m["revoked_at"])


async def live(engine: AsyncEngine, party_id: int) -> list[MqttCredential]:
    """The party's unrevoked credentials, oldest first."""
    query = (mqtt_credentials.select()
             .where(mqtt_credentials.c.party_id == party_id, mqtt_credentials.c.revoked_at.is_(None))
             .order_by(mqtt_credentials.c.id))
    async with engine.connect() as conn:
        return [_row(r) for r in (await conn.execute(query)).all()]


async def party_has_mqtt_credentials(engine: AsyncEngine, party_id: int) -> bool:
    return bool(await live(engine, party_id))


async def with_live_credentials(conn: AsyncConnection, party_ids: set[int]) -> set[int]:
    """The parties among `party_ids` with live credentials: the MQTT API's event channel test
    (gateway/store/events.py `register_event_channel`)."""
    if not party_ids:
        return set()
    rows = await conn.execute(sa.select(mqtt_credentials.c.party_id).distinct().where(
        mqtt_credentials.c.party_id.in_(party_ids), mqtt_credentials.c.revoked_at.is_(None)))
    return {int(r[0]) for r in rows}


async def record(engine: AsyncEngine, *, party_id: int, username: str, password: str, now: datetime,
                 revoke: list[int]) -> MqttCredential:
    """Store a new credential (its password's hash) and revoke `revoke` in one transaction, and
    start the party's MQTT event cursor: at its newest event for first credentials (or the first
    after a revocation), where it was for a rotation."""
    async with engine.begin() as conn:
        await mqtt_event_cursors.start(conn, party_id, from_now=not revoke)
        if revoke:
            await conn.execute(mqtt_credentials.update()
                               .where(mqtt_credentials.c.id.in_(revoke), mqtt_credentials.c.revoked_at.is_(None))
                               .values(revoked_at=now))
        row = (await conn.execute(mqtt_credentials.insert().values(
            party_id=party_id, username=username, password_hash=hash_password(password), created_at=now)
            .returning(*mqtt_credentials.c))).one()
    return _row(row)


async def revoke(engine: AsyncEngine, ids: list[int], now: datetime) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(mqtt_credentials.update()
                                    .where(mqtt_credentials.c.id.in_(ids), mqtt_credentials.c.revoked_at.is_(None))
                                    .values(revoked_at=now))
    return int(result.rowcount)

