"""`[mqtt_api]` refused with the key and the value; `hangw admin party mqtt-credentials` as an
operator runs it; the MQTT API's rate limit is the party's REST bucket."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_config
from gateway.errors import NotFound, Unavailable
from gateway.mqtt_api import credentials
from gateway.mqtt_api.topics import Topics
from gateway.store.store import open_store
from sandbox.dynsec_broker import DynsecBroker
from tests.gateway.conftest import ONCOR
from tests.mqtt_api.conftest import mqtt_gateway, mqtt_section
from tests.mqtt_api.party_client import PartyClient, Refused


@pytest.mark.parametrize(("section", "key", "words"), [
    ({"enabled": True}, "mqtt_api.admin_password", "needs admin_username and admin_password"),
    ({"topic_root": "hangw/#"}, "mqtt_api.topic_root", "without wildcards"),
    ({"topic_root": "$SYS/x"}, "mqtt_api.topic_root", "not starting with $"),
    ({"share_group": "a/b"}, "mqtt_api.share_group", "ShareName"),
    ({"port": 0}, "mqtt_api.port", "greater than or equal to 1"),
    ({"enabled": True, "admin_username": "gw", "admin_password": "pw", "brokr": "x"}, "mqtt_api.brokr", "unknown key"),
])
def test_bad_mqtt_api_config_names_key_and_value(section: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"mqtt_api": section}, env={})
    problems = {p.key: p for p in caught.value.problems}
    assert key in problems, caught.value
    assert words in problems[key].message


def _admin(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "admin", "-c", str(config), "party", "mqtt-credentials",
                           *args], capture_output=True, text=True, timeout=60, check=False)


async def test_the_command_issues_refuses_rotates_and_revokes(tmp_path: Path, broker: DynsecBroker) -> None:
    section = mqtt_section(broker)
    async with mqtt_gateway(tmp_path / "gw", broker, mqtt_api=section) as gw:
        party_id, _ = await gw.new_party("Acme", "123456789")
        toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in section.items())
        config = tmp_path / "hangw.toml"
        config.write_text(f'data_dir = "{gw.config.data_dir}"\n[mqtt_api]\n{toml}\n')
        issued = await asyncio.to_thread(_admin, config, "--party", str(party_id))
        assert issued.returncode == 0, issued.stderr
        lines = dict(line.split(": ", 1) for line in issued.stdout.splitlines())
        assert "shown once" in issued.stderr
        client = PartyClient(broker.host, broker.port, lines["username"], lines["password"])
        await asyncio.to_thread(client.connect)
        client.close()
        # Only a hash is stored: the password is nowhere in the database file.
        assert lines["password"].encode() not in (gw.config.data_dir / "hangw.db").read_bytes()
        again = await asyncio.to_thread(_admin, config, "--party", str(party_id))
        assert again.returncode == 1 and "--rotate" in again.stderr
        revoked = await asyncio.to_thread(_admin, config, "--party", str(party_id), "--revoke")
        assert revoked.returncode == 0 and lines["username"] in revoked.stdout
        with pytest.raises(Refused):
            await asyncio.to_thread(PartyClient(broker.host, broker.port, lines["username"], lines["password"]).connect)
        # The command's other refusals are the typed errors of the functions it calls (each process
        # start costs seconds): what it prints is their detail. A store of its own, as the command's:
        # the running gateway's pooled SQLite connections were seen not to show the command's
        # revocation (reported; the broker refuses the revoked client either way, above).
        cfg = gw.config.mqtt_api
        store = await open_store(gw.config.storage_url)
        try:
            with pytest.raises(NotFound, match="--party 999: no such party"):
                await credentials.issue(store, cfg, 999, gw.clock.now(), rotate=False)
            with pytest.raises(NotFound, match="no live MQTT credentials"):
                await credentials.revoke(store, cfg, party_id, gw.clock.now())
            with pytest.raises(Unavailable, match="admin_username and admin_password are not set"):
                await credentials.issue(store, cfg.model_copy(update={"admin_password": ""}), party_id,
                                        gw.clock.now(), rotate=False)
        finally:
            await store.close()


async def test_mqtt_requests_spend_the_partys_rest_bucket(tmp_path: Path, broker: DynsecBroker) -> None:
    async with mqtt_gateway(tmp_path / "gw", broker, rate_limit={"requests_per_second": 0.01, "burst": 6}) as gw:
        await gw.load_premises()
        party_id, token = await gw.new_party("Acme", "123456789")  # one request of the burst
        await gw.active_agreement(token, ONCOR, "MTR-1", "alice@example.test")  # two more (invite, …)
        issued = await credentials.issue(gw.store, gw.config.mqtt_api, party_id, gw.clock.now(), rotate=False)
        client = PartyClient(broker.host, broker.port, issued.credential.username, issued.password)
        await asyncio.to_thread(client.connect)
        topics = Topics(gw.config.mqtt_api.topic_root)
        responses = f"{topics.responses_prefix(party_id)}r"
        assert await asyncio.to_thread(client.subscribe, responses) == 1
        statuses = []
        for i in range(8):
            correlation = uuid.uuid4().bytes
            await asyncio.to_thread(client.publish, topics.requests(party_id),
                                    {"kind": "text", "esi_ids": [ONCOR], "text": f"t{i}"},
                                    response_topic=responses, correlation=correlation)
            answer = await asyncio.to_thread(client.next_message, 15.0)
            assert answer.correlation_data == correlation
            statuses.append(answer.user_properties["status"])
            if answer.user_properties["status"] == "429":
                problem = json.loads(answer.payload)
                assert problem["code"] == "rate_limited"
                assert int(answer.user_properties["Retry-After"]) >= 1
                assert answer.user_properties["RateLimit-Remaining"] == "0"
        assert "202" in statuses and statuses[-1] == "429"
        # The same bucket: REST is refused now too.
        rest = await gw.client.post("/v1/han-requests", headers=gw.auth(token),
                                    json={"kind": "text", "esi_ids": [ONCOR], "text": "rest"})
        assert rest.status_code == 429
        client.close()
