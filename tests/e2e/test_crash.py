"""kill -9 the gateway repeatedly while requests and a fan-out flow; afterwards every accepted
delivery reached its meter exactly once, counted at the simulated meters.

The simulated field runs in its own process (`hangw sim-field`), reached over loopback by the
`simulated_remote` route, so it outlives the gateway it counts for."""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.cli.simfield import premises, premises_csv
from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store

CUSTOMER = "crash@example.test"
PER_TDSP = 4


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                await c.get(url)
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def _serve(config: Path, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)


async def test_kill_9_repeatedly_delivers_every_accepted_item_exactly_once(tmp_path: Path) -> None:
    field_port, gw_port = _port(), _port()
    data = tmp_path / "data"
    data.mkdir()
    base = f"http://127.0.0.1:{gw_port}"
    cfg = tmp_path / "hangw.toml"
    cfg.write_text(f"""data_dir = "{data}"
[server]
port = {gw_port}
public_url = "{base}"
[routes]
kind = "simulated_remote"
url = "http://127.0.0.1:{field_port}"
[pipeline]
poll_interval_seconds = 0.05
fanout_page = 10
[rate_limit]
requests_per_second = 1000.0
burst = 1000
[log]
level = "WARNING"
""")
    store = await open_store(f"sqlite+aiosqlite:///{data / 'hangw.db'}")
    _c, op_token = await store.issue_credential(role=Role.OPERATOR, label="t", now=SystemClock().now())
    await store.close()
    log = (tmp_path / "serve.log").open("ab")
    field = subprocess.Popen([sys.executable, "-m", "gateway", "sim-field", "--port", str(field_port),
                              "--per-tdsp", str(PER_TDSP)], stdout=log, stderr=subprocess.STDOUT)
    gw = _serve(cfg, log)
    items = premises(PER_TDSP)
    esi_ids = [p.esi_id for p in items]
    accepted: dict[int, tuple[int, list[str], str]] = {}  # request id -> (se id, targets, command)
    try:
        await _wait_http(f"http://127.0.0.1:{field_port}/counts")
        await _wait_http(f"{base}/healthz")
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            op = {"Authorization": f"Bearer {op_token}"}
            r = await http.post("/v1/premises/import", content=premises_csv(items, CUSTOMER),
                                headers={**op, "Content-Type": "text/csv"})
            assert r.status_code == 200, r.text
            r = await http.post("/v1/parties", headers=op, json={"name": "K", "duns": "111111111",
                                                                 "contact_email": "k@k.test"})
            party = r.json()["id"]
            token = (await http.post(f"/v1/parties/{party}/credentials", headers=op,
                                     json={"label": "k"})).json()["token"]
            me = {"Authorization": f"Bearer {token}"}
            r = await http.post("/v1/agreements", headers=me, json={
                "kind": "in_home_device_services", "scopes": ["text", "price", "load_control"],
                "premises": [{"esi_id": p.esi_id, "meter_number": p.meter_number} for p in items],
                "customer_email": CUSTOMER, "duration_months": 12})
            assert r.status_code == 201, r.text
            box = mailbox.mbox(data / "mail" / "outbox.mbox")
            body = next(iter(box)).get_payload(decode=True)
            box.close()
            assert isinstance(body, bytes)
            found = re.search(re.escape(base) + r"/consent/[A-Za-z0-9_\-]+", body.decode())
            assert found
            await http.get(found.group(0))
            assert (await http.post(found.group(0), data={"decision": "accept"})).status_code == 200

            rng = random.Random(5)
            for cycle in range(4):
                async def flow(n: int, cycle: int = cycle) -> None:
                    for i in range(n):
                        esi = rng.choice(esi_ids)
                        if i == 3:
                            body: dict[str, Any] = {"kind": "price", "all_premises": True, "provider_id": 1,
                                                    "price": f"0.{cycle + 1}", "duration_minutes": 60}
                        else:
                            body = {"kind": "text", "esi_ids": [esi], "text": f"c{cycle} #{i}"}
                        try:
                            r = await http.post("/v1/han-requests", headers=me, json=body)
                        except httpx.HTTPError:
                            return  # killed mid-request: not known as accepted
                        if r.status_code == 202:
                            j = r.json()
                            targets = esi_ids if body.get("all_premises") else [esi]
                            cmd = "publish_price" if body["kind"] == "price" else "display_message"
                            accepted[j["id"]] = (j["se_id"], targets, cmd)

                task = asyncio.create_task(flow(40))
                # Kill after a few acceptances (however fast this machine is), mid-flow.
                target, deadline = len(accepted) + rng.randint(4, 12), time.monotonic() + 10
                while len(accepted) < target and time.monotonic() < deadline and not task.done():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(rng.random() * 0.05)
                os.kill(gw.pid, signal.SIGKILL)
                gw.wait()
                await task
                gw = _serve(cfg, log)
                await _wait_http(f"{base}/healthz")

            # Let the restarted gateway finish: every accepted delivery handed to the field.
            async def settled() -> bool:
                for rid in accepted:
                    s = (await http.get(f"/v1/han-requests/{rid}", headers=me)).json()
                    if s["state"] != "accepted" or set(s["premises_by_state"]) - {"delivered"}:
                        return False
                return True

            deadline = time.monotonic() + 60
            while not await settled():
                assert time.monotonic() < deadline, "deliveries did not settle"
                await asyncio.sleep(0.3)
            counts = httpx.get(f"http://127.0.0.1:{field_port}/counts").json()
    finally:
        for proc in (gw, field):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    print(f"accepted requests: {len(accepted)}, frames counted at the meters: {sum(counts.values())}")
    assert len(accepted) >= 16
    assert any(cmd == "publish_price" for _, _, cmd in accepted.values())
    for rid, (se_id, targets, cmd) in accepted.items():
        for esi in targets:
            assert counts.get(f"{esi}|{cmd}|{se_id}") == 1, (rid, esi, counts.get(f"{esi}|{cmd}|{se_id}"))
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
