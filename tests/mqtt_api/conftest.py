"""A Mosquitto with the dynamic-security plugin for the session; a gateway with its MQTT API on it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store import mqtt_credentials
from sandbox.dynsec_broker import DynsecBroker, start_dynsec_broker
from tests.gateway.conftest import Gateway, running_gateway


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynsecBroker]:
    found = start_dynsec_broker(tmp_path_factory.mktemp("dynsec"))
    try:
        yield found
    finally:
        found.stop()


def mqtt_section(broker: DynsecBroker, **over: Any) -> dict[str, Any]:
    # A topic root, client id and share group of each test's own: the gateways of earlier tests
    # leave persistent sessions on the session's broker, which must not take this test's requests.
    tag = uuid.uuid4().hex[:8]
    return {"enabled": True, "host": broker.host, "port": broker.port, "admin_username": broker.admin_username,
            "admin_password": broker.admin_password, "topic_root": f"t{tag}/v1", "client_id": f"gw-{tag}",
            "share_group": f"g{tag}", "session_expiry_seconds": 120, **over}


async def mqtt_ready(gw: Gateway) -> None:
    """Wait until /readyz says the gateway's MQTT API has connected and subscribed."""
    async with asyncio.timeout(20):
        while (await gw.client.get("/readyz")).json().get("mqtt_api") != "connected":
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def mqtt_gateway(data_dir: Path, broker: DynsecBroker, *, reuse: bool = False,
                       **sections: Any) -> AsyncIterator[Gateway]:
    sections.setdefault("mqtt_api", mqtt_section(broker))
    async with running_gateway(data_dir, reuse=reuse, **sections) as gw:
        await mqtt_ready(gw)
        yield gw


async def live_usernames(gw: Gateway, party_id: int) -> list[str]:
    return [c.username for c in await mqtt_credentials.live(gw.store.engine, party_id)]


# PostgreSQL for the two-instance test: the gateway tests' fixtures (a database per test, migrated).

