"""Three `hangw serve` instances on one PostgreSQL database, killed with kill -9 at random moments
and restarted while texts, prices, load-control events, cancellations and two fan-outs are sent to
random instances; afterwards every delivery the API shows as taken by the route reached its meter
exactly once, counted outside the gateways, and no frame reached a meter twice. For each kind of
route of tests/e2e/test_crash.py:
- `simulated`: the simulated field (`hangw sim-field`, its own process);
- `headends`: three emulated head-ends (MultiSpeak, IEC 61968-9 over Mosquitto, binary TCP), each
  instance with its own callback port and MQTT client id.

What it shows: the instances share the delivery queue (each claims its due rows with
FOR UPDATE SKIP LOCKED and a lease, gateway/store/deliveries.py `read_due`), a killed instance's
claims are taken over when the lease ends (a short one here), fan-out pages are expanded by any
instance, and the route's idempotency by outbound id keeps a taken-over item from reaching a meter
twice. At least one instance is serving at every moment (never all down).

With the head-ends, a delivery notice for a transaction a killed instance tracked in memory is
dropped today (durable head-end tracking is another part of issue 14), so such deliveries stay
`submitted`: the test accepts `submitted` as settled and checks those at the head-ends' counts.
Once that part is in, `submitted` must no longer be accepted as settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from tests.e2e.test_crash import ROUTES, _port, _serve, _stop, _wait_http, consenting_party
from tests.gateway.conftest import pg_url  # noqa: F401  (the fixture: a fresh database per test)

INSTANCES = 3
MIN_KILLS = 20
MIN_KILLS_SERVING = 2  # of which while the instance was serving (a restart takes seconds)
KILL_PHASE_SECONDS = (12.0, 45.0)  # at least, at most (a loaded machine restarts slowly)
SETTLE_SECONDS = 20.0
LEASE_SECONDS = 2.0
COMMANDS = {"text": "display_message", "price": "publish_price", "load_control": "load_control_event"}


def _config(tmp_path: Path, n: int, port: int, *, pg: str, data: Path, routes_toml: str) -> Path:
    cfg = tmp_path / f"hangw-{n}.toml"
    cfg.write_text(f"""data_dir = "{data}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[storage]
url = "{pg}"
[pipeline]
poll_interval_seconds = 0.05
retry_base_seconds = 0.2
fanout_page = 10
claim_lease_seconds = {LEASE_SECONDS}
[rate_limit]
requests_per_second = 1000.0
burst = 1000
[log]
level = "WARNING"
{routes_toml}""")
    return cfg


class Instances:
    """The gateway processes, each restarted after a kill; which ones answer /healthz."""

    def __init__(self, configs: list[Path], ports: list[int], log: Any) -> None:
        self.configs, self.ports, self.log = configs, ports, log
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(configs)
        self.up: set[int] = set()
        self.kills = 0
        self.kills_serving = 0  # of which the instance was serving (the others: while starting)
        self._starting: dict[int, asyncio.Task[None]] = {}

    async def start(self, n: int) -> None:
        self.procs[n] = _serve(self.configs[n], self.log)
        await _wait_http(f"http://127.0.0.1:{self.ports[n]}/healthz", timeout=60)
        self.up.add(n)

    def kill(self, n: int) -> None:
        proc = self.procs[n]
        assert proc is not None
        if n in self.up:
            self.kills_serving += 1
        self.up.discard(n)
        if (starting := self._starting.pop(n, None)) is not None:
            starting.cancel()  # killed while starting: its wait for /healthz ends with it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.kills += 1
        # Restarted at once; serving when it answers.
        self._starting[n] = asyncio.create_task(self.start(n))

    def stop(self) -> None:
        for starting in self._starting.values():
            starting.cancel()
        for proc in self.procs:
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    _stop(proc)


async def _operator_token(pg: str) -> str:
    store = await open_store(pg)
    try:
        _c, token = await store.issue_credential(role=Role.OPERATOR, label="t", now=SystemClock().now())
    finally:
        await store.close()
    return token


def _own_routes(routes_toml: str, n: int) -> str:
    """One instance's routes: its own MultiSpeak callback port and MQTT client id."""
    toml = re.sub(r"callback_port = \d+", lambda _m: f"callback_port = {_port()}", routes_toml)
    return re.sub(r'client_id = "([^"]+)"', lambda m: f'client_id = "{m.group(1)}-{n}"', toml)


# Bounded inside (start-ups 60 s each at most, kills 45 s, settling 20 s); on a quiet machine a
# run takes well under a minute, on the shared 2-core machine at load 13 about 150 s (each
# `hangw serve` start-up then takes 15-40 s), hence more than the suite's 120 s default.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("route", list(ROUTES))
async def test_three_instances_killed_repeatedly_deliver_every_item_exactly_once(
        tmp_path: Path, pg_url: str, route: str) -> None:  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    log = (tmp_path / "serve.log").open("ab")
    ports = [_port() for _ in range(INSTANCES)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    rng = random.Random(14)
    # request id -> (kind, where it was sent); a cancel's kind is cancel_text / cancel_load_control
    accepted: dict[int, str] = {}
    # Settled: delivered, or cancelled by a cancel. A head-end's delivery notice for an item a
    # killed instance submitted is lost today (durable head-end tracking is another part of the
    # issue): such items stay `submitted`, and the head-end's count says whether they arrived.
    settled = {"delivered", "cancelled", "failed"} | (set() if route == "simulated" else {"submitted"})
    async with ROUTES[route](tmp_path, log) as meters:
        configs = [_config(tmp_path, n, ports[n], pg=pg_url, data=data, routes_toml=_own_routes(meters.routes_toml, n))
                   for n in range(INSTANCES)]
        gws = Instances(configs, ports, log)
        try:
            await gws.start(0)  # the first one creates the schema; the consent mail is in its mbox
            others = asyncio.gather(*(gws.start(n) for n in range(1, INSTANCES)))
            op_token = await _operator_token(pg_url)
            async with httpx.AsyncClient(base_url=bases[0], timeout=10) as http:
                me = await consenting_party(http, op_token, route, meters, data=data, base=bases[0],
                                            scopes=["text", "price", "load_control"])
            await others
            esi_ids = [esi for esi, _meter in meters.premises]
            clients = [httpx.AsyncClient(base_url=b, timeout=10, headers=me) for b in bases]

            async def send(body: dict[str, Any]) -> int | None:
                """To a random instance; None when it was killed in flight (not known as accepted)."""
                n = rng.choice(sorted(gws.up) or [0])
                try:
                    r = await clients[n].post("/v1/han-requests", json=body)
                except httpx.HTTPError:
                    return None
                if r.status_code != 202:
                    return None  # e.g. a load-control event overlapping another: refused, not sent
                rid: int = r.json()["id"]
                accepted[rid] = body["kind"]
                return rid

            killing_done = asyncio.Event()

            async def flow() -> None:
                texts: list[int] = []
                events: list[int] = []
                fanouts = 0
                i = 0
                started = time.monotonic()
                while not killing_done.is_set():
                    i += 1
                    esi = rng.choice(esi_ids)
                    roll = rng.random()
                    if fanouts < 2 and time.monotonic() - started > 3 + 6 * fanouts:
                        # two fan-outs to every premise, a text and a price, expanded page by page
                        fanouts += 1
                        body: dict[str, Any] = (
                            {"kind": "price", "all_premises": True, "provider_id": 1, "price": "0.21",
                             "duration_minutes": 60} if fanouts == 1 else
                            {"kind": "text", "all_premises": True, "text": "to all"})
                        await send(body)
                    elif roll < 0.45:
                        if (rid := await send({"kind": "text", "esi_ids": [esi], "text": f"t{i}"})) is not None:
                            texts.append(rid)
                    elif roll < 0.65:
                        await send({"kind": "price", "esi_ids": [esi], "provider_id": 1, "price": f"0.{i}",
                                    "duration_minutes": 60})
                    elif roll < 0.8:
                        rid = await send({"kind": "load_control", "esi_ids": [esi], "device_classes": 1,
                                          "criticality": 3, "duration_minutes": 30})
                        if rid is not None:
                            events.append(rid)
                    elif roll < 0.9 and texts:
                        await send({"kind": "cancel_text", "request_id": texts.pop(rng.randrange(len(texts)))})
                    elif events:
                        await send({"kind": "cancel_load_control",
                                    "request_id": events.pop(rng.randrange(len(events)))})
                    await asyncio.sleep(0.05)

            async def killer() -> None:
                started = time.monotonic()
                while (time.monotonic() - started < KILL_PHASE_SECONDS[0] or gws.kills < MIN_KILLS
                       or gws.kills_serving < MIN_KILLS_SERVING) and time.monotonic() - started < KILL_PHASE_SECONDS[1]:
                    await asyncio.sleep(rng.uniform(0.3, 1.1))
                    # Any instance, serving or still starting (a restart takes seconds on a busy
                    # machine), but never the last one serving: work continues.
                    # A serving one when two or more serve; else now and then one that is still
                    # starting (its start-up killed), leaving the others time to come up.
                    if len(gws.up) >= 2:
                        gws.kill(rng.choice(sorted(gws.up)))
                    elif gws.up and rng.random() < 0.4:
                        gws.kill(rng.choice(sorted(set(range(INSTANCES)) - gws.up)))
                killing_done.set()

            await asyncio.gather(flow(), killer())
            # What is still starting joins in when it is up; the ones serving finish the work.

            # Every accepted request settles: its deliveries delivered, or cancelled by a cancel.
            async def unsettled() -> dict[int, Any]:
                pending: dict[int, Any] = {}
                for rid in accepted:
                    r = await clients[rng.choice(sorted(gws.up))].get(f"/v1/han-requests/{rid}")
                    assert r.status_code == 200, (rid, r.status_code, r.text)
                    s = r.json()
                    if s["state"] == "expanding" or set(s["premises_by_state"]) - settled:
                        pending[rid] = (s["state"], s["premises_by_state"])
                return pending

            deadline = time.monotonic() + SETTLE_SECONDS
            while pending := await unsettled():
                assert time.monotonic() < deadline, f"deliveries did not settle: {pending}"
                await asyncio.sleep(0.3)

            # The API's word for every delivery, next to what the meters counted.
            shown: list[dict[str, Any]] = []
            for rid in accepted:
                cursor = None
                while True:
                    params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                    page = (await clients[min(gws.up)].get(f"/v1/han-requests/{rid}/deliveries", params=params)).json()
                    shown += [{"request": rid, **d} for d in page["items"]]
                    if not (cursor := page["next_cursor"]):
                        break
            for c in clients:
                await c.aclose()
        finally:
            gws.stop()
            log.close()
    counts, texts = meters.frames, meters.texts
    kinds: dict[str, int] = {}
    for kind in accepted.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    by_state: dict[str, int] = {}
    for d in shown:
        by_state[d["state"]] = by_state.get(d["state"], 0) + 1
    print(f"{INSTANCES} instances, {gws.kills} kills ({gws.kills_serving} while serving); accepted requests by "
          f"kind: {kinds}; deliveries by state: "
          f"{by_state}; frames counted at the meters: {sum(counts.values())}")
    assert gws.kills >= MIN_KILLS and gws.kills_serving >= MIN_KILLS_SERVING, (gws.kills, gws.kills_serving)
    assert {"text", "price", "load_control", "cancel_text"} <= set(kinds), kinds
    # the two fan-outs at least
    assert by_state.get("delivered", 0) + by_state.get("submitted", 0) >= len(esi_ids) * 2, by_state
    for d in shown:
        key = f"{d['esi_id']}|{d['command']}|{d['se_id']}"
        if d["state"] in ("delivered", "submitted"):  # the route took it: it reached the meter, once
            assert counts.get(key) == 1, (d, counts.get(key))
        elif d["state"] == "failed":  # refused by the route (e.g. a head-end without that command)
            assert counts.get(key, 0) == 0, (d, counts.get(key))
        else:  # cancelled before it was sent (never at the meter), or withdrawn after (once)
            assert d["state"] == "cancelled" and counts.get(key, 0) <= 1, (d, counts.get(key))
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
    assert max(texts.values()) == 1, {k: v for k, v in texts.items() if v > 1}
