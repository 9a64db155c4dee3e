"""`hangw provision … --api URL --token TOKEN`: the same actions through a running gateway's REST
API, following the device (or the HAN operation) until it ends, one line per new history entry.
Exit status as standalone: 0 ended well, 1 failed or refused, 3 no end within --wait."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from ams_adapters.contract import ProvisioningKind, ProvisioningRequest

HAN_PATH = {ProvisioningKind.INITIALIZE_HAN: "initialize", ProvisioningKind.CLEAR_DEVICES: "clear",
            ProvisioningKind.DECOMMISSION_HAN: "decommission"}
DEVICE_ENDS = {"joined": 0, "removed": 0, "failed": 1}


def _eui(text: str) -> str:
    return text.replace(":", "").replace("-", "").upper()


def print_refusal(r: httpx.Response) -> int:
    try:
        problem: dict[str, Any] = r.json()
    except ValueError:
        problem = {}
    errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors", []))
    print(f"refused: HTTP {r.status_code} {problem.get('code', '')}: {problem.get('detail', r.text)}"
          + (f" ({errors})" if errors else ""))
    return 1


async def follow_api(args: argparse.Namespace, request: ProvisioningRequest) -> int:
    headers = {"Authorization": f"Bearer {args.token}"}
    esi = request.esi_id
    async with httpx.AsyncClient(base_url=args.api.rstrip("/"), headers=headers, timeout=30) as http:
        if request.kind is ProvisioningKind.PROVISION_DEVICE:
            assert request.eui64 is not None
            r = await http.post(f"/v1/premises/{esi}/devices", json={
                "eui64": _eui(request.eui64), "device_type": args.device_type, "install_code": args.install_code,
                "join_window_days": args.join_window_days})
            if r.status_code != 201:
                return print_refusal(r)
            return await _follow_device(http, args, esi, _eui(request.eui64))
        if request.kind is ProvisioningKind.DELETE_DEVICE:
            assert request.eui64 is not None
            r = await http.delete(f"/v1/premises/{esi}/devices/{_eui(request.eui64)}")
            if r.status_code == 204:
                print(f"{_eui(request.eui64)} at {esi}: removed already")
                return 0
            if r.status_code != 202:
                return print_refusal(r)
            return await _follow_device(http, args, esi, _eui(request.eui64))
        r = await http.post(f"/v1/premises/{esi}/han/{HAN_PATH[request.kind]}")
        if r.status_code != 202:
            return print_refusal(r)
        return await _follow_operation(http, args, esi, int(r.json()["id"]))


async def _follow_device(http: httpx.AsyncClient, args: argparse.Namespace, esi: str, eui64: str) -> int:
    shown = 0
    deadline = time.monotonic() + args.wait
    while True:
        r = await http.get(f"/v1/premises/{esi}/devices/{eui64}")
        if r.status_code != 200:
            return print_refusal(r)
        device = r.json()
        for entry in device["history"][shown:]:
            why = entry["reason"] or ""
            detail = f" ({entry['detail']})" if entry["detail"] else ""
            print(f"{entry['at'][11:19]}  {entry['state']}" + (f": {why}{detail}" if why else detail), flush=True)
        shown = len(device["history"])
        # A delete ends at `removed`; a provisioning at `joined` or `failed`.
        if device["status"] in DEVICE_ENDS:
            return DEVICE_ENDS[device["status"]]
        if time.monotonic() > deadline:
            print(f"no end within {args.wait:.0f} s; status {device['status']} (the gateway keeps following it)")
            return 3
        await asyncio.sleep(0.5)


async def _follow_operation(http: httpx.AsyncClient, args: argparse.Namespace, esi: str, op_id: int) -> int:
    deadline = time.monotonic() + args.wait
    last = ""
    while True:
        r = await http.get(f"/v1/premises/{esi}/han")
        if r.status_code != 200:
            return print_refusal(r)
        op = next((o for o in r.json()["operations"] if o["id"] == op_id), None)
        state = op["state"] if op else "unknown"
        if state != last:
            print(f"operation {op_id} {op['kind'] if op else ''} at {esi}: {state}"
                  + (f" ({op['reason']})" if op and op["reason"] else ""), flush=True)
            last = state
        if state in ("done", "failed"):
            return 0 if state == "done" else 1
        if time.monotonic() > deadline:
            print(f"no end within {args.wait:.0f} s; the operation stays queued at the gateway")
            return 3
        await asyncio.sleep(0.5)
