"""HAN requests over the MQTT API beside REST, on the same `hangw serve` in the same run: request →
answer round trips per second and their p50/p99 latency. One party, single-premise text requests;
the broker is a Mosquitto of the benchmark's own with the dynamic-security plugin
(sandbox/dynsec_broker.py), the party's credentials come from `hangw admin party mqtt-credentials`.

    python -m benchmarks.mqtt [--requests 500] [--concurrency 16] [--rounds 2]
                              [--db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Both channels keep `--concurrency` requests in flight. Over MQTT the gateway handles one party's
requests in the order they arrived (gateway/mqtt_api/requests.py), one at a time, so the MQTT figure
is one party's ceiling; REST runs them side by side. Rounds alternate REST/MQTT; the best of each is
kept. Last line: `mqtt ratio vs rest: X` (MQTT round trips per second / REST's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from benchmarks.pipeline import _database, _load, _pct
from benchmarks.ratelimit import _party
from gateway.mqtt_api.client import tcp_no_delay
from sandbox.dynsec_broker import DynsecBroker, start_dynsec_broker
from sandbox.ports import free_port

ROOT = "hangw/v1"


def _config(tmp: Path, db_url: str, port: int, broker: DynsecBroker) -> Path:
    cfg = tmp / "hangw.toml"
    cfg.write_text(f"""data_dir = "{tmp / 'data'}"
[storage]
url = "{db_url}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[rate_limit]
requests_per_second = 100000.0
burst = 100000
[log]
level = "WARNING"
[mqtt_api]
enabled = true
host = "{broker.host}"
port = {broker.port}
admin_username = "{broker.admin_username}"
admin_password = "{broker.admin_password}"
topic_root = "{ROOT}"
""")
    return cfg


@contextlib.asynccontextmanager
async def _serving(tmp: Path, cfg: Path) -> AsyncIterator[httpx.AsyncClient]:
    port = int(cfg.read_text().split("port = ", 1)[1].split()[0])
    log = (tmp / "serve.log").open("ab")
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(cfg)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                     limits=httpx.Limits(max_connections=64)) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).json().get("mqtt_api") == "connected":
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the gateway's MQTT API did not connect: see {tmp / 'serve.log'}")
            yield http
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _credentials(cfg: Path, party_id: int) -> tuple[str, str]:
    run = subprocess.run([sys.executable, "-m", "gateway", "admin", "-c", str(cfg), "party", "mqtt-credentials",
                          "--party", str(party_id)], capture_output=True, text=True, timeout=60, check=True)
    fields = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    return fields["username"], fields["password"]


class _Party:
    """The third party's paho client: publish a request, await the answer with its correlation data."""

    def __init__(self, host: str, port: int, username: str, password: str, party_id: int) -> None:
        self.requests = f"{ROOT}/parties/{party_id}/requests"
        self.responses = f"{ROOT}/parties/{party_id}/responses/bench"
        self._c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}",
                              protocol=paho.MQTTv5)
        self._c.username_pw_set(username, password)
        self._c.on_message = self._on_message
        self._c.on_socket_open = tcp_no_delay  # as the gateway's own client (gateway/mqtt_api/client.py)
        self._host, self._port = host, port
        self._waiting: dict[bytes, asyncio.Future[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        connected = asyncio.Event()
        self._c.on_connect = lambda *a: self._loop.call_soon_threadsafe(connected.set)  # type: ignore[union-attr]
        self._c.connect(self._host, self._port)
        self._c.loop_start()
        await asyncio.wait_for(connected.wait(), 10)
        self._c.subscribe(self.responses, qos=1)
        await asyncio.sleep(0.2)

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        props = msg.properties
        correlation = getattr(props, "CorrelationData", b"")
        status = int(dict(getattr(props, "UserProperty", [])).get("status", "0"))
        fut = self._waiting.pop(correlation, None)
        if fut is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(fut.set_result, status)

    async def ask(self, body: bytes) -> int:
        correlation = uuid.uuid4().bytes
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = fut
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.responses
        props.CorrelationData = correlation
        self._c.publish(self.requests, body, qos=1, properties=props)
        return await asyncio.wait_for(fut, 60)


async def _mqtt_load(party: _Party, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], list[int]]:
    latencies: list[float] = []
    statuses: list[int] = []
    queue = list(bodies)

    async def worker() -> None:
        while queue:
            body = queue.pop()
            t0 = time.perf_counter()
            statuses.append(await party.ask(body))
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies, statuses


async def measure(db: str | None, requests: int, concurrency: int, rounds: int) -> dict[str, float]:
    best = {"rest": 0.0, "mqtt": 0.0}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = start_dynsec_broker(tmp / "broker")
        try:
            async with _database(tmp, db) as (db_url, _delivered):
                cfg = _config(tmp, db_url, free_port(), broker)
                async with _serving(tmp, cfg) as http:
                    me, esi_ids = await _party(tmp, http, db_url)
                    party_id = (await http.get("/v1/me", headers=me)).json()["party"]["id"]
                    username, password = await asyncio.to_thread(_credentials, cfg, party_id)
                    party = _Party(broker.host, broker.port, username, password, party_id)
                    await party.start()
                    rng = random.Random(1)
                    try:
                        for _round in range(rounds):
                            bodies = [{"kind": "text", "esi_ids": [rng.choice(esi_ids)], "text": f"b {i}"}
                                      for i in range(requests)]
                            seconds, latencies, answers = await _load(http, "POST", "/v1/han-requests", bodies,
                                                                      concurrency, me)
                            assert all(r.status_code == 202 for r in answers), {r.status_code for r in answers}
                            _report("rest", requests / seconds, latencies, best)
                            raw = [json.dumps(b).encode() for b in bodies]
                            seconds, latencies, statuses = await _mqtt_load(party, raw, concurrency)
                            assert set(statuses) == {202}, set(statuses)
                            _report("mqtt", requests / seconds, latencies, best)
                    finally:
                        party.close()
        finally:
            broker.stop()
    return best


def _report(channel: str, rate: float, latencies: list[float], best: dict[str, float]) -> None:
    best[channel] = max(best[channel], rate)
    print(f"  {channel}: {rate:,.0f} round trips/s, p50 {_pct(latencies, 0.5):.1f} ms, p99 "
          f"{_pct(latencies, 0.99):.1f} ms (load {os.getloadavg()[0]:.1f})", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (default: SQLite, the embedded default)")
    args = parser.parse_args(argv)
    print(f"{args.requests} text requests per channel and round, concurrency {args.concurrency}, "
          f"{'PostgreSQL' if args.db else 'SQLite'}", flush=True)
    best = asyncio.run(measure(args.db, args.requests, args.concurrency, args.rounds))
    print(f"best: rest {best['rest']:,.0f}/s, mqtt {best['mqtt']:,.0f}/s")
    print(f"mqtt ratio vs rest: {best['mqtt'] / best['rest']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
