"""kill -9 of a `hangw serve` while it handles MQTT requests: after the restart every request is
answered, and each is accepted once (the broker redelivers what was not acknowledged; the
correlation data's idempotency key replays what was already committed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.ratelimit import _party
from gateway.clock import SystemClock
from gateway.config import parse_config
from gateway.mqtt_api import credentials
from gateway.mqtt_api.topics import Topics
from gateway.store.store import open_store
from sandbox.dynsec_broker import DynsecBroker
from sandbox.ports import free_port
from tests.mqtt_api.conftest import mqtt_section
from tests.mqtt_api.party_client import PartyClient


def _config(tmp: Path, port: int, broker: DynsecBroker) -> tuple[Path, dict[str, object]]:
    section = mqtt_section(broker)
    mqtt = "\n".join(f"{k} = {json.dumps(v)}" for k, v in section.items())
    cfg = tmp / "hangw.toml"
    cfg.write_text(f'data_dir = "{tmp / "data"}"\n[server]\nport = {port}\npublic_url = "http://127.0.0.1:{port}"\n'
                   f'[rate_limit]\nrequests_per_second = 10000.0\nburst = 10000\n[log]\nlevel = "WARNING"\n'
                   f"[mqtt_api]\n{mqtt}\n")
    return cfg, section


@contextlib.contextmanager
def _serve(tmp: Path, cfg: Path) -> Iterator[subprocess.Popen[bytes]]:
    with (tmp / "serve.log").open("ab") as log:
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(cfg)], stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            yield server
        finally:
            if server.poll() is None:
                server.kill()
            server.wait(10)


async def _connected(http: httpx.AsyncClient) -> None:
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).json().get("mqtt_api") == "connected":
                    return
            await asyncio.sleep(0.1)


async def test_kill_9_while_answering_loses_no_request_and_doubles_none(tmp_path: Path,
                                                                        broker: DynsecBroker) -> None:
    port = free_port()
    cfg, section = _config(tmp_path, port, broker)
    topics = Topics(str(section["topic_root"]))
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hangw.db'}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        with _serve(tmp_path, cfg) as server:
            await _connected(http)
            me, esi_ids = await _party(tmp_path, http, db_url)
            party_id = (await http.get("/v1/me", headers=me)).json()["party"]["id"]
            store = await open_store(db_url)
            try:
                mqtt_config = parse_config({"mqtt_api": section}, env={}).mqtt_api
                issued = await credentials.issue(store, mqtt_config, party_id, SystemClock().now(), rotate=False)
            finally:
                await store.close()
            client = PartyClient(broker.host, broker.port, issued.credential.username, issued.password)
            await asyncio.to_thread(client.connect)
            responses = f"{topics.responses_prefix(party_id)}k"
            assert await asyncio.to_thread(client.subscribe, responses) == 1
            sent = {uuid.uuid4().bytes: f"k{i}" for i in range(40)}
            for correlation, text in sent.items():
                await asyncio.to_thread(client.publish, topics.requests(party_id),
                                        {"kind": "text", "esi_ids": [esi_ids[0]], "text": text},
                                        response_topic=responses, correlation=correlation)
            first = await asyncio.to_thread(client.next_message, 30.0)
            os.kill(server.pid, signal.SIGKILL)  # in the middle of the queue
            server.wait(10)
        answers = [first]
        with _serve(tmp_path, cfg):
            await _connected(http)
            ids: dict[bytes, int] = {}
            async with asyncio.timeout(60):
                while True:
                    for answer in answers:
                        assert answer.user_properties["status"] == "202", answer.payload
                        found = json.loads(answer.payload)["id"]
                        assert answer.correlation_data is not None
                        assert ids.setdefault(answer.correlation_data, found) == found  # a replay: the same id
                    answers = []
                    if set(ids) == set(sent):
                        break
                    answers.append(await asyncio.to_thread(client.next_message, 30.0))
            listed = (await http.get("/v1/han-requests", headers=me, params={"limit": 500})).json()["items"]
            assert sorted(r["id"] for r in listed) == sorted(ids.values())  # each accepted once
        client.close()
