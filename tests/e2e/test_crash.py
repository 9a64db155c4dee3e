"""kill -9 the gateway repeatedly while requests and a fan-out flow, for each kind of route;
afterwards every accepted delivery reached its meter exactly once, counted at the simulated meters,
and no text was shown twice (not even under a second message id).

The simulated meters live in processes of their own, so they outlive the gateway they count for:
- `simulated`: the simulated field (`hangw sim-field`), reached by the `simulated_remote` route;
- `headends`: three emulated TDSP head-ends (`hangw sim headend`), one per head-end protocol, reached
  by `[routes] kind = "adapters"`: MultiSpeak (Oncor), IEC 61968-9 over MQTT (CenterPoint, through
  the Mosquitto broker) and the binary cellular protocol (TNMP).
The requests carry no Idempotency-Key: the test counts the `202`s the gateway answered, and a request
killed in flight may or may not have been accepted (its text is then shown at most once).

Every delivery reaches a definite end (issue 14): once the bound `confirm_within_seconds` (short
here) has passed no delivery is `submitted`, and the API's state of every delivery agrees with what
the meters received: every one is `delivered` and its frame reached its meter, for every route (no
`unknown`: a head-end's report is acknowledged only once the gateway stored it, the 61968-9 MQTT
client included, so a gateway killed in between gets it again). A head-end's delivery
report that came while the gateway was down is not lost: the head-ends resend it (MultiSpeak
callbacks retried, 61968-9 replies queued for the gateway's persistent MQTT session, binary results
resent until confirmed) and the restarted gateway resolves it through its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mailbox
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.simfield import premises, premises_csv
from sandbox.testbed import wait_http

CUSTOMER = "crash@example.test"
PER_TDSP = 4
KILLS = 4
# One emulated head-end per head-end protocol: (TDSP, its ESI ID prefix).
HEADENDS = (("oncor", "1044372"), ("centerpoint", "1008901"), ("tnmp", "1040051"))
MQTT_BROKER = "127.0.0.1:1883"
CONFIRM_WITHIN_S = 3
"""The gateway's bound on `submitted` in these tests: a delivery with no report by then is `unknown`."""




async def accept_by_mail(http: httpx.AsyncClient, data: Path, base: str) -> None:
    """The customer follows the first consent link in the gateway's mbox and accepts."""
    box = mailbox.mbox(data / "mail" / "outbox.mbox")
    body = next(iter(box)).get_payload(decode=True)
    box.close()
    assert isinstance(body, bytes)
    found = re.search(re.escape(base) + r"/consent/[A-Za-z0-9_\-]+", body.decode())
    assert found
    await http.get(found.group(0))
    assert (await http.post(found.group(0), data={"decision": "accept"})).status_code == 200


def _serve(config: Path, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@dataclass
class Meters:
    """The route's far end, in processes of its own: what the gateway config says about it, the
    premises it serves, and (once stopped) what reached its meters."""

    routes_toml: str
    premises: list[tuple[str, str]]  # (ESI ID, meter number)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)  # "<ESI ID>|<command>|<SE id>" -> frames
    texts: dict[str, int] = field(default_factory=dict)  # "<ESI ID>|<words>" -> DisplayMessages
    said: dict[str, str] = field(default_factory=dict)  # TDSP -> its head-end's last line (stats) once stopped


@contextlib.asynccontextmanager
async def simulated_field(tmp_path: Path, log: Any, callback_ports: Sequence[int] = ()) -> AsyncIterator[Meters]:
    """The simulated field; `callback_ports` is unused (the simulated route has no callbacks)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "sim-field", "--port", str(port),
                             "--per-tdsp", str(PER_TDSP)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    meters = Meters(f'[routes]\nkind = "simulated_remote"\nurl = "{url}"\n',
                    [(p.esi_id, p.meter_number) for p in premises(PER_TDSP)], [proc])
    try:
        await wait_http(f"{url}/counts")
        yield meters
        meters.frames = httpx.get(f"{url}/counts").json()
        meters.texts = httpx.get(f"{url}/texts").json()
    finally:
        _stop(proc)


@contextlib.asynccontextmanager
async def emulated_headends(tmp_path: Path, log: Any, callback_ports: Sequence[int] = ()) -> AsyncIterator[Meters]:
    """The three head-ends. `callback_ports`: one MultiSpeak callback port per gateway instance
    (several instances); the MultiSpeak head-end is given every instance's NOT_Server URL, so a
    callback the instance that sent the request cannot take (killed) is retried at a live one, as a
    load balancer in front of the instances would do. The routes' `callback_port` is the first."""
    topics = f"crash/{uuid.uuid4().hex[:8]}"
    tables = ['[routes]\nkind = "adapters"']
    meters = Meters("", [])
    counts_files = []
    try:
        # Started together, then read one after another: three start-ups overlap (each imports
        # the simulators: seconds on a loaded machine).
        for tdsp, prefix in HEADENDS:
            counts_file = tmp_path / f"{tdsp}.counts.json"
            counts_files.append(counts_file)
            listen = MQTT_BROKER if tdsp == "centerpoint" else "127.0.0.1:0"
            further = [arg for p in callback_ports if tdsp == "oncor"
                       for arg in ("--callback-url", f"http://127.0.0.1:{p}/NOT_Server")]
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "sim", "headend", "--tdsp", tdsp, "--listen", listen,
                 "--prefix", f"{topics}/{tdsp}", "--esi-prefix", prefix, "--meters", str(PER_TDSP),
                 "--install", str(PER_TDSP), "--counts-file", str(counts_file), *further],
                stdout=subprocess.PIPE, stderr=log)
            meters.procs.append(proc)
        for (tdsp, _prefix), proc in zip(HEADENDS, meters.procs, strict=True):
            assert proc.stdout is not None
            serving = proc.stdout.readline().decode()
            ids = re.search(r"ESI IDs (\d+) to (\d+)", proc.stdout.readline().decode())
            assert ids, serving
            first, last = int(ids.group(1)), int(ids.group(2))
            width = len(ids.group(1))
            meters.premises += [(f"{n:0{width}d}", f"M-{tdsp}-{n - first}") for n in range(first, last + 1)]
            if tdsp == "centerpoint":  # IEC 61968-9: both ends meet at the broker
                host, _, port = MQTT_BROKER.partition(":")
                tables.append(f'[routes.tdsp.{tdsp}]\nhost = "{host}"\nport = {port}\n'
                              f'topic_prefix = "{topics}/{tdsp}"\nclient_id = "crash-{uuid.uuid4().hex[:8]}"')
            elif tdsp == "oncor":  # MultiSpeak: the callback endpoint keeps its port across restarts
                where = re.search(r"http://127\.0\.0\.1:(\d+)", serving)
                assert where, serving
                tables.append(f'[routes.tdsp.{tdsp}]\nurl = "http://127.0.0.1:{where.group(1)}"\n'
                              f"callback_port = {callback_ports[0] if callback_ports else free_port()}")
            else:
                where = re.search(r"tcp://127\.0\.0\.1:(\d+)", serving)
                assert where, serving
                tables.append(f'[routes.tdsp.{tdsp}]\nhost = "127.0.0.1"\nport = {where.group(1)}')
        meters.routes_toml = "\n".join(tables) + "\n"
        yield meters
    finally:
        for proc in meters.procs:  # stopped together; each then prints its stats
            proc.send_signal(signal.SIGTERM)
        for (tdsp, _prefix), proc in zip(HEADENDS, meters.procs, strict=False):
            try:
                out, _err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _err = proc.communicate()
            meters.said[tdsp] = (out.decode(errors="replace").strip().splitlines() or [""])[-1]
    for counts_file in counts_files:
        counted = json.loads(counts_file.read_text())
        meters.frames.update(counted["frames"])
        meters.texts.update(counted["texts"])


ROUTES = {"simulated": simulated_field, "headends": emulated_headends}


def write_config(tmp_path: Path, data: Path, port: int, meters: Meters) -> Path:
    """`hangw serve`'s config for a crash test: quick timers, no rate limit in the way."""
    cfg = tmp_path / "hangw.toml"
    cfg.write_text(f"""data_dir = "{data}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[pipeline]
poll_interval_seconds = 0.05
confirm_within_seconds = {CONFIRM_WITHIN_S}
retry_base_seconds = 0.2
fanout_page = 10
[rate_limit]
requests_per_second = 1000.0
burst = 1000
[log]
level = "WARNING"
{meters.routes_toml}""")
    return cfg


async def operator_token(data: Path) -> str:
    store = await open_store(f"sqlite+aiosqlite:///{data / 'hangw.db'}")
    try:
        _c, token = await store.issue_credential(role=Role.OPERATOR, label="t", now=SystemClock().now())
    finally:
        await store.close()
    return token


async def consenting_party(http: httpx.AsyncClient, op_token: str, route: str, meters: Meters, *, data: Path,
                           base: str, scopes: list[str]) -> dict[str, str]:
    """The operator imports the meters' premises and registers a party; the customer accepts the
    party's agreement on all of them. The party's auth header."""
    op = {"Authorization": f"Bearer {op_token}"}
    r = await http.post("/v1/premises/import", content=premises_import(route, meters),
                        headers={**op, "Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["created"] == len(meters.premises), r.text
    r = await http.post("/v1/parties", headers=op, json={"name": "K", "duns": "111111111",
                                                         "contact_email": "k@k.test"})
    token = (await http.post(f"/v1/parties/{r.json()['id']}/credentials", headers=op,
                             json={"label": "k"})).json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    r = await http.post("/v1/agreements", headers=me, json={
        "kind": "in_home_device_services", "scopes": scopes,
        "premises": [{"esi_id": esi, "meter_number": meter} for esi, meter in meters.premises],
        "customer_email": CUSTOMER, "duration_months": 12})
    assert r.status_code == 201, r.text
    await accept_by_mail(http, data, base)
    return me


def premises_import(route: str, meters: Meters) -> str:
    """The premises CSV an operator imports for the route's meters."""
    if route == "simulated":
        return premises_csv(premises(PER_TDSP), CUSTOMER)
    return "esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter\n" + "".join(
        f"{esi},{meter},{CUSTOMER},Demo REP,residential,1.1,no\n" for esi, meter in meters.premises)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_kill_9_repeatedly_delivers_every_accepted_item_exactly_once(tmp_path: Path, route: str) -> None:
    gw_port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    base = f"http://127.0.0.1:{gw_port}"
    log = (tmp_path / "serve.log").open("ab")
    accepted: dict[int, tuple[int, list[str], str, str | None]] = {}  # request id -> (se id, targets, command, text)
    api_states: dict[tuple[int, str], str] = {}  # (request id, ESI ID) -> the delivery's state in the API
    async with ROUTES[route](tmp_path, log) as meters:
        cfg = write_config(tmp_path, data, gw_port, meters)
        op_token = await operator_token(data)
        gw = _serve(cfg, log)
        esi_ids = [esi for esi, _meter in meters.premises]
        try:
            await wait_http(f"{base}/healthz")
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                me = await consenting_party(http, op_token, route, meters, data=data, base=base,
                                            scopes=["text", "price", "load_control"])

                rng = random.Random(5)
                for cycle in range(KILLS):
                    async def flow(n: int, cycle: int = cycle) -> None:
                        for i in range(n):
                            esi = rng.choice(esi_ids)
                            text = None
                            if i == 3:
                                body: dict[str, Any] = {"kind": "price", "all_premises": True, "provider_id": 1,
                                                        "price": f"0.{cycle + 1}", "duration_minutes": 60}
                            else:
                                text = f"c{cycle} #{i}"
                                body = {"kind": "text", "esi_ids": [esi], "text": text}
                            try:
                                r = await http.post("/v1/han-requests", headers=me, json=body)
                            except httpx.HTTPError:
                                return  # killed mid-request: not known as accepted
                            if r.status_code == 202:
                                j = r.json()
                                targets = esi_ids if body.get("all_premises") else [esi]
                                cmd = "publish_price" if body["kind"] == "price" else "display_message"
                                accepted[j["id"]] = (j["se_id"], targets, cmd, text)

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
                    await wait_http(f"{base}/healthz")

                # Let the restarted gateway finish: every accepted delivery ends. Nothing stays
                # `submitted` past the bound; a report resent after the restart may still move an
                # `unknown` delivery to `delivered`, so the states are read once they stop changing.
                async def unsettled() -> dict[int, Any]:
                    pending = {}
                    for rid in accepted:
                        s = (await http.get(f"/v1/han-requests/{rid}", headers=me)).json()
                        if s["state"] != "accepted" or set(s["premises_by_state"]) & {"queued", "submitted"}:
                            pending[rid] = (s["state"], s["premises_by_state"])
                        for state, n in s["premises_by_state"].items():
                            states[state] = states.get(state, 0) + n
                    return pending

                deadline = time.monotonic() + 60
                while True:
                    states: dict[str, int] = {}
                    if not (pending := await unsettled()):
                        break
                    assert time.monotonic() < deadline, f"deliveries did not settle: {pending}"
                    await asyncio.sleep(0.3)
                quiet_until = time.monotonic() + 15  # the head-ends' resends back off up to 5 s
                while states.get("unknown") and time.monotonic() < quiet_until:
                    await asyncio.sleep(0.5)
                    states = {}
                    await unsettled()
                for rid in accepted:
                    r = await http.get(f"/v1/han-requests/{rid}/deliveries", headers=me, params={"limit": 500})
                    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text
                    for item in r.json()["items"]:
                        api_states[(rid, item["esi_id"])] = item["state"]
        finally:
            _stop(gw)
            log.close()
    counts, texts = meters.frames, meters.texts
    print(f"{route}: {KILLS} kills, accepted requests: {len(accepted)}, frames counted at the meters: "
          f"{sum(counts.values())}, deliveries by state at the gateway: {states}")
    assert len(accepted) >= 4 * KILLS
    assert "submitted" not in api_states.values(), states
    for rid, (se_id, targets, cmd, _text) in accepted.items():
        for esi in targets:  # what the API says agrees with what reached the meter, for every route:
            # no `unknown` (a head-end's report is acknowledged only once stored, 61968-9 included)
            reached = counts.get(f"{esi}|{cmd}|{se_id}", 0) >= 1
            assert reached and api_states[(rid, esi)] == "delivered", (rid, esi, api_states[(rid, esi)], reached)
    assert any(cmd == "publish_price" for _, _, cmd, _ in accepted.values())
    for rid, (se_id, targets, cmd, text) in accepted.items():
        for esi in targets:
            assert counts.get(f"{esi}|{cmd}|{se_id}") == 1, (rid, esi, counts.get(f"{esi}|{cmd}|{se_id}"))
            if text is not None:  # the same words never shown again under another message id
                assert texts.get(f"{esi}|{text}") == 1, (rid, esi, text, texts.get(f"{esi}|{text}"))
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
    assert max(texts.values()) == 1, {k: v for k, v in texts.items() if v > 1}
    if route == "headends":  # every head-end protocol carried some of it
        reached = {key.split("|")[0][:7] for key in counts}
        assert reached == {prefix for _tdsp, prefix in HEADENDS}, reached
