"""`hangw demo`: the whole gateway on one machine, no setup. SQLite in a data directory, a simulated
field (premises across the five TDSPs, devices of several firmware profiles, field time sped up),
the API on localhost; then a walkthrough over the real API: an operator loads premises, registers a
third party, the third party invites a customer who accepts by the emailed link, and sends a text,
a price and a load-control event, showing each device's answer as it arrives. Then the server keeps
running with the token printed, for trying the API with curl. `--once` runs the walkthrough and
exits 0 only if every step got its expected answers."""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

SPEED = 20.0  # field time runs 20x: a 30 s confirmation takes 1.5 s, a 1-minute event 3 s
STEP_TIMEOUT_S = 60.0
CUSTOMER = "pat.customer@example.test"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the gateway with a simulated field and walk through the API (text, price, "
        "load control); then keep serving")
    parser.add_argument("--once", action="store_true", help="run the walkthrough and exit: 0 only if "
                        "every step got its expected answers")
    parser.add_argument("--data-dir", type=Path, default=Path("hangw-demo"),
                        help="the demo's own directory (emptied at start; default ./hangw-demo)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--per-tdsp", type=int, default=8, help="simulated premises per TDSP (default 8)")
    parser.set_defaults(func=_demo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _demo(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0


def say(text: str = "") -> None:
    print(text, flush=True)


async def _main(args: argparse.Namespace) -> int:
    import httpx
    import uvicorn

    from gateway.app import create_app
    from gateway.config import parse_config
    from gateway.device_keys import new_device_key
    from gateway.domain.model import Role
    from gateway.pipeline.dispatcher import RouteSet
    from gateway.store.store import open_store
    from sandbox.simfield import ScaledClock, build_field, premises, premises_csv
    from sandbox.simulated_route import SimulatedRoute

    data_dir: Path = args.data_dir
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    port = args.port or _free_port()
    base = f"http://127.0.0.1:{port}"
    config = parse_config({"data_dir": str(data_dir), "server": {"port": port, "public_url": base},
                           "pipeline": {"poll_interval_seconds": 0.05},
                           # a fresh device key in the data directory: link keys are stored encrypted
                           "security": {"device_key_secret": new_device_key()},
                           "log": {"level": "WARNING"}}, env={})
    store = await open_store(config.storage_url)
    from gateway.clock import SystemClock

    _cred, op_token = await store.issue_credential(role=Role.OPERATOR, label="demo", now=SystemClock().now())
    await store.close()

    say("HAN gateway demo")
    items = premises(args.per_tdsp)
    field, devices = build_field(ScaledClock(SPEED, seed=1), items)
    say(f"  simulated field: {len(items)} premises across 5 TDSPs, "
        f"{sum(len(d) for d in devices.values())} devices "
        f"({len({p for i in items for p in i.profiles})} firmware profiles), field time x{SPEED:g}")
    app = create_app(config, routes=RouteSet(SimulatedRoute(field, now=time.time)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            return 1
        await asyncio.sleep(0.05)
    say(f"  API on {base} (OpenAPI: {base}/docs), SQLite in {data_dir.resolve()}")
    await asyncio.sleep(1.0 / SPEED * 40)  # the devices join and settle (40 s of field time)

    ok = True
    token = ""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        try:
            token, ok = await _walkthrough(http, op_token, items, devices, config.mbox_path, premises_csv)
        except Exception as exc:
            say(f"\nthe walkthrough failed: {type(exc).__name__}: {exc}")
            ok = False
    say()
    say("every step got its expected answers" if ok else "SOME STEPS DID NOT GET THEIR ANSWERS")
    if args.once:
        server.should_exit = True
        await serving
        return 0 if ok else 1
    say()
    say("The gateway keeps running. Try it (Ctrl-C stops):")
    say(f"  export HANGW_TOKEN={token}")
    say(f"  curl -s -H \"Authorization: Bearer $HANGW_TOKEN\" -H 'Content-Type: application/json' \\\n"
        f"    -d '{{\"kind\": \"text\", \"all_premises\": true, \"text\": \"Hello\"}}' {base}/v1/han-requests")
    say(f"  curl -s -H \"Authorization: Bearer $HANGW_TOKEN\" {base}/v1/han-requests/1/deliveries")
    say(f"  operator token: {op_token}")
    await serving
    return 0 if ok else 1


async def _walkthrough(http: Any,  # noqa: PLR0917
                       op_token: str, items: list[Any], devices: dict[str, list[Any]],
                       mbox_path: Path, premises_csv: Any) -> tuple[str, bool]:
    op = {"Authorization": f"Bearer {op_token}"}
    say("\n1. The operator loads the premises (CSV import)")
    r = await http.post("/v1/premises/import", content=premises_csv(items, CUSTOMER),
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

    chosen = items[:3]  # three premises, two TDSPs, SE 1.1 and 1.2 meters, five firmware profiles
    say(f"3. The third party invites the customer {CUSTOMER} for {len(chosen)} premises")
    r = await http.post("/v1/agreements", headers=me, json={
        "kind": "in_home_device_services", "scopes": ["text", "price", "load_control"],
        "premises": [{"esi_id": p.esi_id, "meter_number": p.meter_number} for p in chosen],
        "customer_email": CUSTOMER, "duration_months": 12})
    r.raise_for_status()
    link = _consent_link(mbox_path, str(http.base_url))
    say(f"   the customer opens the emailed link {link[:60]}… and accepts")
    (await http.get(link)).raise_for_status()
    (await http.post(link, data={"decision": "accept"})).raise_for_status()
    esi_ids = [p.esi_id for p in chosen]

    all_ok = True
    say("4. A text message, confirmation required (the residents press OK)")
    all_ok &= await _step(http, me, {"kind": "text", "esi_ids": esi_ids, "text": "Peak prices 2-6pm today",
                                     "confirmation_required": True, "importance": "high",
                                     "duration_minutes": 60}, "confirmed", esi_ids, devices)
    say("5. A price, acknowledgement wanted")
    all_ok &= await _step(http, me, {"kind": "price", "esi_ids": esi_ids, "provider_id": 42,
                                     "rate_label": "PEAK", "price": "0.2450", "tier": 2,
                                     "number_of_tiers": 3, "acknowledgement": True,
                                     "duration_minutes": 240}, "acknowledged", esi_ids, devices)
    say("6. A load-control event: 2 °C cooling offset for 1 minute, all device classes")
    all_ok &= await _step(http, me, {"kind": "load_control", "esi_ids": esi_ids, "device_classes": 0x0FFF,
                                     "criticality": 3, "duration_minutes": 1, "cooling_offset_c": "2.0",
                                     "duty_cycle_percent": 50}, "completed", esi_ids, devices)
    return token, all_ok


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


async def _step(http: Any,  # noqa: PLR0917
                me: dict[str, str], body: dict[str, Any], wanted: str, esi_ids: list[str],
                devices: dict[str, list[Any]]) -> bool:
    r = await http.post("/v1/han-requests", headers=me, json=body)
    if r.status_code != 202:
        say(f"   refused: {r.status_code} {r.text}")
        return False
    rid = r.json()["id"]
    say(f"   request {rid} accepted (202): {r.json()['targeted']} premises, SE id {r.json()['se_id']}")
    names = {_eui(d.eui64): f"{d.profile.id}" for e in esi_ids for d in devices[e]}
    seen: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + STEP_TIMEOUT_S
    done: set[str] = set()
    while time.monotonic() < deadline:
        page = (await http.get(f"/v1/han-requests/{rid}/deliveries", headers=me)).json()["items"]
        for item in page:
            for h in item["history"]:
                key = (item["esi_id"], h["eui64"] or "", h["state"])
                if key in seen:
                    continue
                seen.add(key)
                who = f"{names.get(h['eui64'], h['eui64'])}" if h["eui64"] else "meter"
                say(f"   [{len(done)}/{len(esi_ids)}] {item['esi_id']} {who:>22}: {h['state']}")
                if h["state"] == wanted:
                    done.add(item["esi_id"])
        if done >= set(esi_ids):
            say(f"   every premise answered '{wanted}'")
            return True
        await asyncio.sleep(0.2)
    say(f"   only {len(done)}/{len(esi_ids)} premises answered '{wanted}' in {STEP_TIMEOUT_S:g} s")
    return False


def _eui(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in reversed(raw))


