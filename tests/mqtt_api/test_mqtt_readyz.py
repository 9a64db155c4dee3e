"""/readyz follows the MQTT API's broker connection after the gateway had connected: a broker this
test started itself (its own `mosquitto -c …` on a free port, never the machine's on 1883) is
stopped, /readyz says "disconnected" with the reason; started again on the same port, "connected"."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from sandbox.dynsec_broker import start_dynsec_broker
from tests.gateway.conftest import Gateway
from tests.mqtt_api.conftest import mqtt_gateway


async def _readyz_until(gw: Gateway, state: str, timeout: float = 20) -> dict[str, str]:
    async with asyncio.timeout(timeout):
        while True:
            r = await gw.client.get("/readyz")
            assert r.status_code == 200, r.text  # the REST API stays ready either way
            body: dict[str, str] = r.json()
            if body.get("mqtt_api") == state:
                return body
            await asyncio.sleep(0.1)


async def test_readyz_reports_the_broker_down_after_connecting_and_back_up(tmp_path: Path) -> None:
    broker = start_dynsec_broker(tmp_path / "broker")
    restarted: subprocess.Popen[bytes] | None = None
    try:
        async with mqtt_gateway(tmp_path / "d", broker) as gw:
            body = await _readyz_until(gw, "connected")
            assert body["status"] == "ready" and "mqtt_api_reason" not in body
            broker.stop()
            body = await _readyz_until(gw, "disconnected")
            assert body["status"] == "ready"
            assert f"127.0.0.1:{broker.port}" in body["mqtt_api_reason"]
            assert "disconnected" in body["mqtt_api_reason"]
            # The same broker again (same port, same dynsec file): paho reconnects by itself.
            restarted = subprocess.Popen(["mosquitto", "-c", str(broker.directory / "mosquitto.conf")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
            body = await _readyz_until(gw, "connected", timeout=30)
            assert "mqtt_api_reason" not in body
    finally:
        broker.stop()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(5)
