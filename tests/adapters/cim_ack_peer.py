"""One gateway instance's 61968-9 MQTT transport in a process of its own, whose "store" the test
drives: `python -m tests.adapters.cim_ack_peer HOST PORT PREFIX CLIENT_ID STORE_WAIT_S`.

Each batch of notices the transport hands over is printed as a JSON line ``{"batch": n, "tx": [...]}``
and stays unstored until the test writes ``store n`` on stdin (a store that takes as long as the
test likes, so it can kill -9 this process between receipt and commit). ``stats`` prints the
transport's counters. Used by tests/adapters/test_cim_manual_ack.py."""

from __future__ import annotations

import asyncio
import json
import sys

from ams_adapters.transports.cim_mqtt import CimMqttTransport
from ams_adapters.wire.common import Notification


def say(obj: object) -> None:
    print(json.dumps(obj), flush=True)


async def main(host: str, port: int, prefix: str, client_id: str, store_wait_s: float) -> None:
    loop = asyncio.get_running_loop()
    transport = CimMqttTransport(host, port, prefix, client_id=client_id, share_group="ack-test",
                                 session_expiry_s=120)
    transport.store_wait_s = store_wait_s
    stores: dict[int, asyncio.Future[None]] = {}

    def sink(notes: list[Notification]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = loop.create_future()
        stores[len(stores) + 1] = fut
        say({"batch": len(stores), "tx": [n.transaction_id for n in notes]})
        return fut

    await transport.start(sink)
    say({"ready": transport.connects})
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "store":
            stores[int(line[1])].set_result(None)
        elif line[0] == "stats":
            say({"refused": transport.refused, "stalls": transport.stalls, "connects": transport.connects})
    await transport.close()


if __name__ == "__main__":
    h, p, pre, cid, wait = sys.argv[1:6]
    asyncio.run(main(h, int(p), pre, cid, float(wait)))
