"""`hangw provision inventory ESI_ID [--refresh]`: what is on a premise's HAN, as its meter reports it
and as the gateway's records have it.

Through a running gateway (`--api URL --token TOKEN`): the gateway's records of the premise's
devices and, with `--refresh`, the meter's own live list and where the two differ
(GET /v1/premises/{esi_id}/han/devices). Standalone (`--tdsp …`): the meter's list straight from the
TDSP's head-end, with no records to compare it with.

Exit status: 0 answered (and, with --refresh through the gateway, no difference), 4 answered with
differences, 1 refused or not answered, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

from ams_adapters.profiles import TDSPS

DIFFERENCES = 4


def register_inventory(sub: Any) -> None:
    from gateway.cli.provision import headend_arguments

    p = sub.add_parser("inventory", help="what is on the premise's HAN: the meter's devices and our records",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("esi_id", metavar="ESI_ID", help="ESI ID of the premise")
    p.add_argument("--refresh", action="store_true",
                   help="ask the meter now (through the gateway) and show the differences")
    p.add_argument("--api", metavar="URL", help="through the gateway at URL (e.g. http://127.0.0.1:8080)")
    p.add_argument("--token", help="with --api: your API token (a technician's, a third party's, the operator's)")
    p.add_argument("--tdsp", choices=TDSPS, help="ask this TDSP's head-end directly (or give --api)")
    headend_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.api:
        if not args.token:
            print("--api needs --token")
            return 2
        return asyncio.run(_through_gateway(args))
    if not args.tdsp:
        print("give --api URL --token TOKEN (through the gateway) or --tdsp (ask the head-end directly)")
        return 2
    return asyncio.run(_from_headend(args))


def _time(value: str | None) -> str:
    return "-" if value is None else value[11:19]


def _show_meter(devices: list[dict[str, Any]]) -> None:
    print(f"  {'EUI-64':<18}{'state':<21}{'type':<21}{'SE':<5}{'last seen':<10}{'LQI':>4}{'RSSI':>6}  reason")
    for d in devices:
        lqi, rssi = ("-" if d[k] is None else str(d[k]) for k in ("lqi", "rssi"))
        print(f"  {d['eui64']:<18}{d['join_state']:<21}{d['device_type'] or '-':<21}{d['se_version'] or '-':<5}"
              f"{_time(d['last_seen']):<10}{lqi:>4}{rssi:>6}  {d['reason'] or ''}".rstrip())


async def _through_gateway(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.token}"}
    async with httpx.AsyncClient(base_url=args.api.rstrip("/"), headers=headers, timeout=180) as http:
        r = await http.get(f"/v1/premises/{args.esi_id}/han/devices",
                           params={"refresh": "true"} if args.refresh else None)
    if r.status_code != 200:
        from gateway.cli.provision_api import print_refusal

        return print_refusal(r)
    body = r.json()
    if body["refreshed"]:
        print(f"premise {body['esi_id']}: meter {body['meter_id'] or '?'} answered at {_time(body['taken_at'])} "
              f"UTC through route {body['route']}")
        print("the meter's HAN devices:" if body["meter"] else "the meter's HAN devices: none")
        if body["meter"]:
            _show_meter(body["meter"])
    else:
        print(f"premise {body['esi_id']}: our records (--refresh asks the meter)")
    print("our records:" if body["records"] else "our records: none")
    for rec in body["records"]:
        print(f"  {rec['eui64']:<18}{rec['status']:<21}{rec['device_type']}")
    for d in body["differences"]:
        print(f"difference: {d['eui64']} {d['kind']}: {d['detail']}")
    if body["others"]:
        print(f"{body['others']} other device(s) on this premise are not yours")
    return DIFFERENCES if body["differences"] else 0


async def _from_headend(args: argparse.Namespace) -> int:
    from ams_adapters.inventory import InventoryUnavailable
    from gateway.cli.provision import headend_adapter

    route = headend_adapter(args)
    await route.start()
    try:
        inventory = await route.han_inventory(args.esi_id)
    except InventoryUnavailable as exc:
        print(f"no inventory: {exc.reason}")
        return 1
    finally:
        await route.close()
    taken = datetime.fromtimestamp(inventory.taken_at, UTC).isoformat()
    print(f"premise {inventory.esi_id}: meter {inventory.meter_id or '?'} answered at {_time(taken)} UTC "
          f"through {args.tdsp}'s head-end")
    _show_meter([{"eui64": d.eui64.replace(":", "").upper(), "join_state": d.join_state.value,
                  "device_type": d.device_type, "se_version": d.se_version,
                  "last_seen": None if d.last_seen is None else datetime.fromtimestamp(d.last_seen, UTC).isoformat(),
                  "lqi": d.lqi, "rssi": d.rssi, "reason": d.reason} for d in inventory.devices])
    return 0
