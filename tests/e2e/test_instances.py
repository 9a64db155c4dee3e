"""Three `hangw serve` instances on one PostgreSQL database, killed with kill -9 at random moments
and restarted while texts, prices, load-control events, cancellations and two fan-outs are sent to
random instances; afterwards every delivery has reached a definite end, the API's state of each
agrees with what reached its meter (counted outside the gateways), and no frame reached a meter
twice. For each kind of route of tests/e2e/test_crash.py:
- `simulated`: the simulated field (`hangw sim-field`, its own process);
- `headends`: three emulated head-ends (MultiSpeak, IEC 61968-9 over Mosquitto, binary TCP),
  configured as docs/operator.md has an operator configure several instances: each instance has its
  own MultiSpeak callback port and the MultiSpeak head-end knows every instance's NOT_Server URL
  (`--callback-url`, standing in for the load balancer of a real deployment), so a callback the
  killed sender cannot take is retried at a live instance; for 61968-9 each instance has its own
  `client_id` and all share one `share_group`, so each report goes to one of them (queued by the
  broker for a killed one until it is back).

What it shows: the instances share the delivery queue (each claims its due rows with
FOR UPDATE SKIP LOCKED and a lease, gateway/store/deliveries.py `read_due`), a killed instance's
claims are taken over when the lease ends (a short one here), fan-out pages are expanded by any
instance, and the route's idempotency by outbound id keeps a taken-over item from reaching a meter
twice. A head-end's report is applied by whichever instance receives it, also for an item another
(perhaps dead) instance submitted. With `[pipeline] confirm_within_seconds` short, no delivery is
`queued` or `submitted` at the end; one shown `delivered` reached its meter exactly once, `failed`
never, `cancelled` at most once (withdrawn after), and none is `unknown`, for any route: every
head-end report is acknowledged to its head-end only once stored (61968-9 included: the MQTT client
sends its PUBACK after the commit), so an instance killed in between gets it again when it is back.
At least one instance is serving at every moment (never all down).
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
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.testbed import wait_http
from tests.e2e.test_crash import (
    CONFIRM_WITHIN_S,
    ROUTES,
    _serve,
    _stop,
    consenting_party,
)

INSTANCES = 3
MIN_KILLS = 20
MIN_KILLS_SERVING = 2  # of which while the instance was serving (a restart takes seconds)
KILL_PHASE_SECONDS = (12.0, 45.0)  # at least, at most (a loaded machine restarts slowly)
COVERED = {"text", "price", "load_control", "cancel_text"}  # kinds of request the flow must get accepted
SETTLE_SECONDS = 30.0  # from the last instance up: the confirm bound, a lease, retries
QUIET_SECONDS = 6.0  # no change in `unknown` for this long: no report is still coming (backoff caps at 5 s)
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
confirm_within_seconds = {CONFIRM_WITHIN_S}
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
        await wait_http(f"http://127.0.0.1:{self.ports[n]}/healthz", timeout=60)
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

    async def all_up(self) -> None:
        """Wait for every restarted instance to serve (each start-up bounded by `start`)."""
        await asyncio.gather(*self._starting.values())
        assert self.up == set(range(len(self.configs))), self.up

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


def _own_routes(routes_toml: str, n: int, callback_port: int, share_group: str) -> str:
    """One instance's routes as docs/operator.md has an operator configure several instances: its
    own MultiSpeak callback port (every instance's NOT_Server URL is known to the head-end), its own
    MQTT client id, and the same 61968-9 `share_group` as the others (each report to one of them)."""
    toml = re.sub(r"callback_port = \d+", lambda _m: f"callback_port = {callback_port}", routes_toml)
    return re.sub(r'client_id = "([^"]+)"',
                  lambda m: f'client_id = "{m.group(1)}-{n}"\nshare_group = "{share_group}"', toml)


# Bounded inside (start-ups 60 s each at most, kills 45 s, settling 30 s, a quiet wait 18 s); on
# the shared 2-core machine at load 2-8 a run takes 45-105 s, most of it `hangw serve` start-ups
# (several seconds of CPU each, 20 of them after the kills), hence more than the suite's 120 s default.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("route", list(ROUTES))
async def test_three_instances_killed_repeatedly_deliver_every_item_exactly_once(
        tmp_path: Path, migrated_pg_url: str, route: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = (tmp_path / "serve.log").open("ab")
    ports = [free_port() for _ in range(INSTANCES)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    rng = random.Random(14)
    callback_ports = [free_port() for _ in range(INSTANCES)]  # MultiSpeak NOT_Server, one per instance
    share_group = f"kill-{uuid.uuid4().hex[:8]}"
    # request id -> its kind; a cancel's kind is cancel_text / cancel_load_control
    accepted: dict[int, str] = {}
    phases: dict[str, float] = {}  # where the run's time goes (printed)
    began = time.monotonic()
    async with ROUTES[route](tmp_path, log, callback_ports) as meters:
        configs = [_config(tmp_path, n, ports[n], pg=migrated_pg_url, data=data,
                           routes_toml=_own_routes(meters.routes_toml, n, callback_ports[n], share_group))
                   for n in range(INSTANCES)]
        gws = Instances(configs, ports, log)
        try:
            op_token = await _operator_token(migrated_pg_url)  # at head already: the three start together
            others = asyncio.gather(*(gws.start(n) for n in range(1, INSTANCES)))
            await gws.start(0)  # the consent mail is in the shared data directory's mbox
            async with httpx.AsyncClient(base_url=bases[0], timeout=10) as http:
                me = await consenting_party(http, op_token, route, meters, data=data, base=bases[0],
                                            scopes=["text", "price", "load_control"])
            await others
            phases["start-up"] = time.monotonic() - began
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
                # Until the kills are made and the flow covered every kind (a loaded machine gets
                # fewer requests in), within the phase's bound.
                while (time.monotonic() - started < KILL_PHASE_SECONDS[0] or gws.kills < MIN_KILLS
                       or gws.kills_serving < MIN_KILLS_SERVING or not set(accepted.values()) >= COVERED) \
                        and time.monotonic() - started < KILL_PHASE_SECONDS[1]:
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

            mark = time.monotonic()
            await asyncio.gather(flow(), killer())
            phases["kills"] = time.monotonic() - mark

            # Every accepted delivery reaches a definite end: none stays queued or submitted past
            # `confirm_within_seconds`; a report that comes later still moves `unknown` to
            # `delivered`, so the states are read once they stop changing.
            async def unsettled() -> tuple[dict[int, Any], dict[str, int]]:
                pending: dict[int, Any] = {}
                states: dict[str, int] = {}
                for rid in accepted:
                    r = await clients[rng.choice(sorted(gws.up))].get(f"/v1/han-requests/{rid}")
                    assert r.status_code == 200, (rid, r.status_code, r.text)
                    s = r.json()
                    if s["state"] == "expanding" or set(s["premises_by_state"]) & {"queued", "submitted"}:
                        pending[rid] = (s["state"], s["premises_by_state"])
                    for state, n in s["premises_by_state"].items():
                        states[state] = states.get(state, 0) + n
                return pending, states

            mark = time.monotonic()
            deadline = mark + SETTLE_SECONDS
            while (now := await unsettled())[0]:
                assert time.monotonic() < deadline, f"deliveries did not settle: {now[0]}"
                await asyncio.sleep(0.3)
            # Meanwhile what was still starting came up (each start-up bounded): a killed
            # instance's MQTT session holds its share of the 61968-9 reports until it is back.
            await gws.all_up()
            now = await unsettled()
            # Resent reports (MultiSpeak callbacks back off up to 5 s) may still end an `unknown`:
            # read until the count of `unknown` has not changed for QUIET_SECONDS.
            states, changed = now[1], time.monotonic()
            quiet_deadline = changed + 3 * QUIET_SECONDS
            while (states.get("unknown") and time.monotonic() - changed < QUIET_SECONDS
                   and time.monotonic() < quiet_deadline):
                await asyncio.sleep(0.5)
                if (now := await unsettled())[1].get("unknown") != states.get("unknown"):
                    changed = time.monotonic()
                states = now[1]
            phases["settling"] = time.monotonic() - mark

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
    # MultiSpeak callbacks that found their instance dead (each then tried at the other instances)
    refused = re.search(r"'callback_errors': (\d+)", meters.said.get("oncor", ""))
    print(f"{route}: {INSTANCES} instances, {gws.kills} kills ({gws.kills_serving} while serving); accepted "
          f"requests by kind: {kinds}; deliveries by state: {by_state}; "
          f"frames counted at the meters: {sum(counts.values())}; "
          + (f"MultiSpeak callbacks refused: {refused.group(1)}; " if refused else "") + "seconds: "
          + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()) + f", all {time.monotonic() - began:.1f}")
    assert gws.kills >= MIN_KILLS and gws.kills_serving >= MIN_KILLS_SERVING, (gws.kills, gws.kills_serving)
    assert by_state.get("delivered", 0) >= len(esi_ids) * 2, by_state  # the two fan-outs at least
    # A definite end for every delivery, whatever died when, and one that says what happened: no
    # `unknown` (no head-end report lost on a kill, whichever route).
    assert not {"submitted", "queued", "unknown"} & set(by_state), by_state
    for d in shown:
        key = f"{d['esi_id']}|{d['command']}|{d['se_id']}"
        if d["state"] == "delivered":  # the API's word agrees with the meter: it got it, once
            assert counts.get(key) == 1, (d, counts.get(key))
        elif d["state"] == "failed":  # refused by the route (e.g. a head-end without that command)
            assert counts.get(key, 0) == 0, (d, counts.get(key))
        else:  # cancelled before it was sent (never at the meter), or withdrawn after (once)
            assert d["state"] == "cancelled" and counts.get(key, 0) <= 1, (d, counts.get(key))
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
    assert max(texts.values()) == 1, {k: v for k, v in texts.items() if v > 1}
    # Last, what the flow covered (a machine loaded by other work gets fewer requests accepted
    # between the kills; the checks above hold whatever it covered).
    assert set(kinds) >= COVERED, kinds
