"""A head-end's delivery report reaches a definite end whichever gateway instance is alive (issue 14).

Two `hangw serve` processes on one PostgreSQL and an emulated MultiSpeak head-end
(`hangw sim headend`) in processes of their own. Instance A submits a text and is killed with -9
before the head-end reports (the head-end holds its callbacks for a few seconds). The head-end's
callback to A is refused; it retries with backoff and, given a second NOT_Server URL (what a load
balancer would do), reaches instance B, which never saw the item: B resolves the transaction
through the shared database and the delivery becomes `delivered`, as the third party reads it from
B's API. The head-end carried the text to the meter once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.testbed import wait_http
from tests.e2e.test_crash import Meters, _serve, _stop, consenting_party

REPORT_DELAY_S = 5


def _config(path: Path, data: Path, *, port: int, storage: str, headend_url: str, callback_port: int) -> Path:
    data.mkdir()
    path.write_text(f"""data_dir = "{data}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[storage]
url = "{storage}"
[pipeline]
poll_interval_seconds = 0.05
[log]
level = "WARNING"
[routes]
kind = "adapters"
[routes.tdsp.oncor]
url = "{headend_url}"
callback_port = {callback_port}
""")
    return path


async def test_report_for_an_item_a_killed_instance_submitted_is_applied_by_another(
        tmp_path: Path, migrated_pg_url: str) -> None:
    callback_b = free_port()
    counts_file = tmp_path / "oncor.counts.json"
    log = (tmp_path / "serve.log").open("ab")
    headend = subprocess.Popen(
        [sys.executable, "-m", "gateway", "sim", "headend", "--tdsp", "oncor", "--listen", "127.0.0.1:0",
         "--esi-prefix", "1044372", "--meters", "2", "--install", "2", "--counts-file", str(counts_file),
         "--faults", f"late_callback_rate=1,late_callback_s={REPORT_DELAY_S}",
         "--callback-url", f"http://127.0.0.1:{callback_b}/NOT_Server"],
        stdout=subprocess.PIPE, stderr=log)
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        assert headend.stdout is not None
        serving = headend.stdout.readline().decode()
        ids = re.search(r"ESI IDs (\d+) to (\d+)", headend.stdout.readline().decode())
        where = re.search(r"http://127\.0\.0\.1:\d+", serving)
        assert ids and where, serving
        esi_ids = [ids.group(1), ids.group(2)]
        meters = Meters("", [(esi, f"M-oncor-{i}") for i, esi in enumerate(esi_ids)])

        store = await open_store(migrated_pg_url)  # at head before either instance starts
        try:
            _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="t", now=SystemClock().now())
        finally:
            await store.close()
        port_a, port_b = free_port(), free_port()
        cfg_a = _config(tmp_path / "a.toml", tmp_path / "a", port=port_a, storage=migrated_pg_url,
                        headend_url=where.group(0), callback_port=free_port())
        cfg_b = _config(tmp_path / "b.toml", tmp_path / "b", port=port_b, storage=migrated_pg_url,
                        headend_url=where.group(0), callback_port=callback_b)
        base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        gateways.append(_serve(cfg_a, log))
        await wait_http(f"{base_a}/healthz", timeout=40)
        async with httpx.AsyncClient(base_url=base_a, timeout=10) as http:
            me = await consenting_party(http, op_token, "headends", meters, data=tmp_path / "a", base=base_a,
                                        scopes=["text"])
            r = await http.post("/v1/han-requests", headers=me, json={
                "kind": "text", "esi_ids": [esi_ids[0]], "text": "Storm tonight", "duration_minutes": 60})
            assert r.status_code == 202, r.text
            rid, se_id = r.json()["id"], r.json()["se_id"]

            async def state() -> str:
                items = (await http.get(f"/v1/han-requests/{rid}/deliveries", headers=me)).json()["items"]
                return str(items[0]["state"]) if items else "none"

            deadline = time.monotonic() + REPORT_DELAY_S - 1
            while (now_state := await state()) != "submitted" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert now_state == "submitted", now_state
        os.kill(gateways[0].pid, signal.SIGKILL)  # A dies before the head-end reports
        gateways[0].wait()

        gateways.append(_serve(cfg_b, log))  # B never submitted anything
        await wait_http(f"{base_b}/healthz", timeout=40)
        async with httpx.AsyncClient(base_url=base_b, timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                items = (await http.get(f"/v1/han-requests/{rid}/deliveries", headers=me)).json()["items"]
                if items[0]["state"] != "submitted" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert items[0]["state"] == "delivered", items
            history = [h["state"] for h in items[0]["history"]]
            assert history.index("submitted") < history.index("delivered"), history
            assert items[0]["reference"] == f"oncor:hgw-{items[0]['delivery_id']}"
    finally:
        for gw in gateways:
            if gw.poll() is None:
                _stop(gw)
        headend.send_signal(signal.SIGTERM)
        out, _ = headend.communicate(timeout=20)
        log.close()
    stats = out.decode()
    refused = re.search(r"'callback_errors': (\d+)", stats)
    assert refused and int(refused.group(1)) >= 1, stats  # the callback to A was refused, then retried
    frames = json.loads(counts_file.read_text())["frames"]
    assert frames == {f"{esi_ids[0]}|display_message|{se_id}": 1}, frames
