"""`hangw provision meter-read ESI_ID --tdsp TDSP [--hours N]`: read a meter through its TDSP's head-end,
in the head-end's own protocol (issue 16): an on-demand register read, and with `--hours` the meter's
15-minute interval data of the last N hours (both channels where the premise has generation).

Straight to the head-end (no gateway database), like `hangw provision inventory --tdsp`: for a field
technician or an operator checking a head-end's read operations. The gateway's ingestion reads the
same way for the premises under Energy Data agreements (docs/operator.md).

Exit status: 0 read, 1 the head-end refused, did not answer or answered something malformed, 2 a
usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from ams_adapters.profiles import TDSPS


def register_meter_read(sub: Any) -> None:
    from gateway.cli.provision import headend_arguments

    p = sub.add_parser("meter-read", help="read a meter's register (and interval data) through its head-end",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("esi_id", metavar="ESI_ID", help="ESI ID of the premise")
    p.add_argument("--tdsp", choices=TDSPS, required=True, help="the TDSP whose head-end reads the meter")
    p.add_argument("--hours", type=int, default=0, help="also the interval data of the last N hours (1..744)")
    headend_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not 0 <= args.hours <= 744:
        print(f"--hours: {args.hours} is invalid: 0..744 (a month at most)")
        return 2
    return asyncio.run(_read(args))


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


async def _read(args: argparse.Namespace) -> int:
    from ams_adapters.usage import UsageUnavailable
    from gateway.cli.provision import headend_adapter

    route = headend_adapter(args)
    await route.start()
    try:
        read = await route.read_meter(args.esi_id)
        print(f"premise {args.esi_id}: register read at {_utc(read.read_at)} UTC through {args.tdsp}'s head-end")
        print(f"  delivered {read.delivered_wh} Wh" + (f", received {read.received_wh} Wh"
                                                       if read.received_wh is not None else "")
              + (f", demand {read.demand_w} W" if read.demand_w is not None else ""))
        if args.hours:
            end = int(time.time()) // 900 * 900
            reads = await route.read_usage(args.esi_id, end - args.hours * 3600, end)
            print(f"interval data {_utc(end - args.hours * 3600)} .. {_utc(end)} UTC: {len(reads)} reads")
            print(f"  {'start (UTC)':<18}{'channel':<13}{'Wh':>7}  quality")
            for r in reads:
                print(f"  {_utc(r.start):<18}{r.channel.value:<13}{r.value_wh:>7}  {r.quality.value}")
    except UsageUnavailable as exc:
        print(f"no read: {exc}")
        return 1
    finally:
        await route.close()
    return 0
