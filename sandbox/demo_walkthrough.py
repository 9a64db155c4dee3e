"""The run behind `hangw demo` (sandbox/demo.py): start the demo's field (sandbox/demo_field.py), the
gateway in front of it, and walk through the API as an operator, a third party and a customer would,
printing every device's answer with the route it came through."""

from __future__ import annotations

import asyncio
import mailbox
import re
import shutil
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gateway.app import create_app
from gateway.cli.serve import build_routes
from gateway.clock import SystemClock
from gateway.config import GatewayConfig, parse_config
from gateway.device_keys import new_device_key
from gateway.domain.model import Role
from gateway.store.store import Store, open_store
from sandbox.demo_field import (
    MQTT_BROKER,
    RADIO_EUI64,
    RADIO_INSTALL_CODE,
    SHORT_NAMES,
    DemoField,
    RoutedPremise,
    start_demo_field,
)
from sandbox.simfield import BriskClock, premises_csv

SPEED = 20.0  # field timers run 20x: a 30 s confirmation takes 1.5 s, a 1-minute event 3 s
STEP_TIMEOUT_S = 60.0
CUSTOMER = "pat.customer@example.test"


def _listening_socket(port: int) -> socket.socket:
    """The API's socket, bound now and kept: a port merely found free could be taken by the field's own
    sockets (head-ends, client connections) before uvicorn binds it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def say(text: str = "") -> None:
    print(text, flush=True)


async def run_demo(data_dir: Path, port: int, per_tdsp: int, *, once: bool,
                   mqtt: tuple[str, int] = MQTT_BROKER) -> int:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    listener = _listening_socket(port)
    port = listener.getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    say("HAN gateway demo")
    field = await start_demo_field(per_tdsp, BriskClock(SPEED, seed=1), broker=mqtt)
    try:
        for note in field.notes:
            say(f"  left out: {note}")
        config = parse_config({"data_dir": str(data_dir), "server": {"port": port, "public_url": base},
                               "pipeline": {"poll_interval_seconds": 0.05, "retry_base_seconds": 0.2},
                               # a fresh device key in the data directory: link keys are stored encrypted
                               "security": {"device_key_secret": new_device_key()},
                               "routes": field.routes, "log": {"level": "WARNING"}}, env={})
        store = await open_store(config.storage_url)
        try:
            op_token = await _prepare_store(store, field)
            return await _serve_and_walk(config, store, field, op_token, per_tdsp, listener=listener, once=once)
        finally:
            await store.close()
    finally:
        await field.close()
        listener.close()


async def _prepare_store(store: Store, field: DemoField) -> str:
    """The operator's token; and the radio premise, which the radio route checks at start (the
    installer of the gateway's radio registered it)."""
    now = SystemClock().now()
    _cred, op_token = await store.issue_credential(role=Role.OPERATOR, label="demo", now=now)
    radio = field.radio.premise
    await store.upsert_premise({"esi_id": radio.esi_id, "tdsp": radio.tdsp, "meter_number": radio.meter_number,
                                "customer_email": CUSTOMER, "rep": "Demo REP", "premise_class": "residential",
                                "se_version": radio.se_version, "enhanced_meter": False}, now)
    return op_token


async def _serve_and_walk(config: GatewayConfig, store: Store, field: DemoField, op_token: str,
                          per_tdsp: int, *, listener: socket.socket, once: bool) -> int:
    base = config.server.public_url
    heads = [p for p in field.chosen if p.route != "radio"]
    say(f"  {len(heads)} emulated head-ends through the AMS adapters: " + ", ".join(p.via for p in heads))
    say(f"  {len(field.loaded) - 1} simulated premises behind them ({per_tdsp} per TDSP; devices of "
        f"{len({pid for p in field.loaded[:-1] for pid in p.profiles})} firmware profiles), field timers x{SPEED:g}")
    assert config.routes.radio is not None
    say(f"  premise {field.radio.premise.esi_id}: {field.radio.via}, coordinator emulator at "
        f"{config.routes.radio.device}")
    app = create_app(config, store=store, routes=build_routes(config, store))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.server.port, log_config=None,
                                           access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # the radio forms its HAN first (a few seconds)
        if serving.done():
            serving.result()
            return 1
        await asyncio.sleep(0.05)
    say(f"  API on {base} (OpenAPI: {base}/docs), SQLite in {config.data_dir.resolve()}")
    await asyncio.sleep(1.0 / SPEED * 40)  # the head-ends' devices join and settle (40 s of field timers)

    try:
        ok, token = await _walk(base, op_token, field, config.mbox_path)
        if not once:
            say()
            say("The gateway keeps running. Try it (Ctrl-C stops):")
            say(f"  export HANGW_TOKEN={token}")
            say(f"  curl -s -H \"Authorization: Bearer $HANGW_TOKEN\" -H 'Content-Type: application/json' \\\n"
                f"    -d '{{\"kind\": \"text\", \"all_premises\": true, \"text\": \"Hello\"}}' "
                f"{base}/v1/han-requests")
            say(f"  curl -s -H \"Authorization: Bearer $HANGW_TOKEN\" {base}/v1/han-requests/1/deliveries")
            say(f"  operator token: {op_token}")
            say(f"  in a browser: {base}/dashboard (sign in with $HANGW_TOKEN), {base}/operator (the operator "
                f"token), and the customer's page from the /my/ link in {config.mbox_path}")
            await serving
    finally:  # --once, Ctrl-C, or a failure: stop the gateway (its routes) before the field behind it
        server.should_exit = True
        await serving
    return 0 if ok else 1


async def _walk(base: str, op_token: str, field: DemoField, mbox_path: Path) -> tuple[bool, str]:
    ok = True
    token = ""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        try:
            token, ok = await _walkthrough(http, op_token, field, mbox_path)
        except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
            say(f"\nthe walkthrough failed: {type(exc).__name__}: {exc}")
            ok = False
    say()
    say("every step got its expected answers" if ok else "SOME STEPS DID NOT GET THEIR ANSWERS")
    return ok, token


async def _walkthrough(http: httpx.AsyncClient, op_token: str, field: DemoField,
                       mbox_path: Path) -> tuple[str, bool]:
    op = {"Authorization": f"Bearer {op_token}"}
    say("\n1. The operator loads the premises (CSV import)")
    r = await http.post("/v1/premises/import", content=premises_csv(field.loaded, CUSTOMER),
                        headers={**op, "Content-Type": "text/csv"})
    r.raise_for_status()
    say(f"   {r.json()}")

    say("2. The operator registers a third party and gives it an API token")
    r = await http.post("/v1/parties", headers=op, json={"name": "Bright Energy", "duns": "123456789",
                                                         "contact_email": "api@bright.test"})
    r.raise_for_status()
    party = r.json()["id"]
    r = await http.post(f"/v1/parties/{party}/credentials", headers=op, json={"label": "demo"})
    r.raise_for_status()
    token = r.json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    say(f"   party {party}, token {token[:12]}…")

    chosen = field.chosen  # one premise per route: each head-end's TDSP, and the radio's
    say(f"3. The third party invites the customer {CUSTOMER} for {len(chosen)} premises, one per route")
    for p in chosen:
        say(f"   {p.premise.esi_id} via {p.via}")
    r = await http.post("/v1/agreements", headers=me, json={
        "kind": "in_home_device_services", "scopes": ["text", "price", "load_control"],
        "premises": [{"esi_id": p.premise.esi_id, "meter_number": p.premise.meter_number} for p in chosen],
        "customer_email": CUSTOMER, "duration_months": 12})
    r.raise_for_status()
    link = _consent_link(mbox_path, str(http.base_url))
    say(f"   the customer opens the emailed link {link[:60]}… and accepts")
    (await http.get(link)).raise_for_status()
    (await http.post(link, data={"decision": "accept"})).raise_for_status()

    all_ok = await _provision_display(http, op, field.radio)
    esi_ids = [p.premise.esi_id for p in chosen]
    say("5. A text message, confirmation required (the residents press OK)")
    all_ok &= await _step(http, me, {"kind": "text", "esi_ids": esi_ids, "text": "Peak prices 2-6pm today",
                                     "confirmation_required": True, "importance": "high",
                                     "duration_minutes": 60}, "confirmed", field)
    say("6. A price, acknowledgement wanted")
    all_ok &= await _step(http, me, {"kind": "price", "esi_ids": esi_ids, "provider_id": 42,
                                     "rate_label": "PEAK", "price": "0.2450", "tier": 2,
                                     "number_of_tiers": 3, "acknowledgement": True,
                                     "duration_minutes": 240}, "acknowledged", field)
    say("7. A load-control event: 2 °C cooling offset for 1 minute, all device classes")
    say("   (the radio premise's display has no load to control: it reports the event 'received')")
    all_ok &= await _step(http, me, {"kind": "load_control", "esi_ids": esi_ids, "device_classes": 0x0FFF,
                                     "criticality": 3, "duration_minutes": 1, "cooling_offset_c": "2.0",
                                     "duty_cycle_percent": 50}, "completed", field, radio_wanted="received")
    return token, all_ok


async def _provision_display(http: httpx.AsyncClient, op: dict[str, str], radio: RoutedPremise) -> bool:
    """The installer (here with the operator's token) provisions the customer's display by its install
    code; the gateway's radio admits it and it joins (the display is in pairing mode)."""
    esi_id = radio.premise.esi_id
    eui = RADIO_EUI64.replace(":", "").upper()
    say(f"4. The installer provisions the customer's display at {esi_id} (EUI-64 {RADIO_EUI64}, its "
        f"install code) through {radio.via}")
    r = await http.post(f"/v1/premises/{esi_id}/devices", headers=op, json={
        "eui64": eui, "device_type": "in_home_display", "install_code": RADIO_INSTALL_CODE, "join_window_days": 1})
    if r.status_code != 201:
        say(f"   refused: {r.status_code} {r.text}")
        return False
    seen: list[str] = []
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        device = (await http.get(f"/v1/premises/{esi_id}/devices/{eui}", headers=op)).json()
        for event in device.get("history", []):
            if event["state"] not in seen:
                seen.append(event["state"])
                say(f"   {esi_id} {'radio-ihd':>22}: {event['state']:<19} via {radio.via}")
        if device.get("status") == "joined":
            return True
        await asyncio.sleep(0.2)
    say(f"   the display did not join in {STEP_TIMEOUT_S:g} s (status {device.get('status')})")
    return False


def _consent_link(mbox_path: Path, base: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if mbox_path.exists():
            box = mailbox.mbox(mbox_path)
            try:
                for message in box:
                    payload = message.get_payload(decode=True)
                    if isinstance(payload, bytes):
                        found = re.search(re.escape(base.rstrip("/")) + r"/consent/[A-Za-z0-9_\-]+", payload.decode())
                        if found:
                            return found.group(0)
            finally:
                box.close()
        time.sleep(0.1)
    raise RuntimeError("no invitation email with a consent link arrived")


async def _step(http: httpx.AsyncClient, me: dict[str, str], body: dict[str, Any],  # noqa: PLR0917
                wanted: str, field: DemoField, radio_wanted: str | None = None) -> bool:
    r = await http.post("/v1/han-requests", headers=me, json=body)
    if r.status_code != 202:
        say(f"   refused: {r.status_code} {r.text}")
        return False
    rid = r.json()["id"]
    say(f"   request {rid} accepted (202): {r.json()['targeted']} premises, SE id {r.json()['se_id']}")
    via = {p.premise.esi_id: p for p in field.chosen}
    want = {esi: (radio_wanted or wanted) if p.route == "radio" else wanted for esi, p in via.items()}
    seen: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + STEP_TIMEOUT_S
    done: set[str] = set()
    while time.monotonic() < deadline:
        page = (await http.get(f"/v1/han-requests/{rid}/deliveries", headers=me)).json()["items"]
        for item in page:
            esi_id = item["esi_id"]
            for h in item["history"]:
                key = (esi_id, h["eui64"] or "", h["state"])
                if key in seen:
                    continue
                seen.add(key)
                who = (field.device_names.get(h["eui64"], h["eui64"]) if h["eui64"]
                       else "coordinator" if via[esi_id].route == "radio" else "meter")
                say(f"   [{len(done)}/{len(want)}] {esi_id} {who:>22}: {h['state']:<13} via {via[esi_id].via}")
                if h["state"] == want[esi_id]:
                    done.add(esi_id)
        if done >= set(want):
            routes = Counter(via[e].route for e in want)
            say(f"   every premise answered '{wanted}'" + (f" (the radio's '{radio_wanted}')" if radio_wanted else "")
                + ": " + ", ".join(f"{n} via {SHORT_NAMES[route]}" for route, n in routes.items()))
            return True
        await asyncio.sleep(0.2)
    missing = ", ".join(f"{e} ({via[e].via})" for e in want if e not in done)
    say(f"   only {len(done)}/{len(want)} premises answered '{wanted}' in {STEP_TIMEOUT_S:g} s; not: {missing}")
    return False
