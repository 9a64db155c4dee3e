"""Nothing lost on a kill over IEC 61968-9 MQTT (issue 14): the transport acknowledges an
EndDeviceEvents message only once what it carried is stored, in the order the messages came, so a
gateway instance killed with kill -9 between receipt and commit gets the message again when it is
back; a refused message is acknowledged (not resent forever) and counted; a store that does not
finish within the wait makes the broker resend to the live instance.

Real Mosquitto; each instance is a process of its own (tests/adapters/cim_ack_peer.py: the real
transport with a store the test completes when it likes), restarted with the same client id as a
gateway instance is; the events are published by this test as a head-end does, and every handing
over of an event is counted here, outside the instances.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import aiomqtt

from ams_adapters.wire import cim
from ams_adapters.wire.common import NoteKind, Notification
from tests.adapters.harness import MQTT

NOTHING_FOR_S = 1.5  # an acknowledged message is not resent: nothing comes in this long


class Instance:
    """One instance's process; what it prints is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process, handed: Counter[str]) -> None:
        self.proc, self.handed = proc, handed

    @classmethod
    async def start(cls, prefix: str, client_id: str, handed: Counter[str], store_wait_s: float) -> Instance:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.adapters.cim_ack_peer", MQTT[0], str(MQTT[1]), prefix, client_id,
            str(store_wait_s), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return cls(proc, handed)

    async def line(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        # a cancelled readline leaves what it had not returned in the stream's buffer
        text = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert text, f"instance ended (rc {self.proc.returncode})"
        said: dict[str, Any] = json.loads(text)
        self.handed.update(said.get("tx", []))
        return said

    async def batch(self, timeout: float = 10.0) -> tuple[int, list[str]]:
        said = await self.line(timeout)
        return said["batch"], said["tx"]

    async def nothing_more(self) -> None:
        try:
            said = await self.line(NOTHING_FOR_S)
        except TimeoutError:
            return
        raise AssertionError(f"handed over again although acknowledged: {said}")

    def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")

    async def stats(self) -> dict[str, Any]:
        self.tell("stats")
        return await self.line()

    async def kill_9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def _event(txid: str) -> bytes:
    note = Notification(NoteKind.DELIVERED, txid, "10089010000000001", time.time())
    return cim.encode_events(uuid.uuid4().hex, [note])


async def test_an_event_not_yet_stored_when_its_instance_is_killed_is_handed_to_it_again() -> None:
    prefix = f"test/ack/{uuid.uuid4().hex[:8]}"
    client_id = f"{prefix}-gw"
    events = cim.topics(prefix)["events"]
    handed: Counter[str] = Counter()
    started: list[Instance] = []

    async def instance(store_wait_s: float = 30.0) -> Instance:
        started.append(await Instance.start(prefix, client_id, handed, store_wait_s))
        assert "ready" in await started[-1].line(15.0)
        return started[-1]

    try:
        async with aiomqtt.Client(*MQTT, identifier=f"{prefix}-headend") as headend:
            async def publish(payload: bytes) -> None:
                await headend.publish(events, payload, qos=1)

            # Killed after receipt, before the store finished: the restarted instance gets it.
            a = await instance()
            await publish(_event("t1"))
            assert await a.batch() == (1, ["t1"])
            await a.kill_9()
            b = await instance()
            assert await b.batch() == (1, ["t1"])
            b.tell("store 1")

            # In order: t3 stored but t2 before it not yet, so neither is acknowledged; both come
            # again after the kill, t1 (acknowledged above) does not.
            await publish(_event("t2"))
            await publish(_event("t3"))
            assert await b.batch() == (2, ["t2"])
            assert await b.batch() == (3, ["t3"])
            b.tell("store 3")
            await asyncio.sleep(0.3)
            await b.kill_9()
            c = await instance()
            assert [await c.batch(), await c.batch()] == [(1, ["t2"]), (2, ["t3"])]
            c.tell("store 2")
            c.tell("store 1")

            # A message that is not a valid EndDeviceEvents is acknowledged and counted; the one
            # after it is handed over and, once stored, acknowledged too.
            await publish(b"<not-cim/>")
            await publish(_event("t4"))
            assert await c.batch() == (3, ["t4"])
            c.tell("store 3")
            assert (await c.stats())["refused"] == 1
            await asyncio.sleep(0.3)
            await c.kill_9()
            d = await instance(store_wait_s=1.0)
            await d.nothing_more()  # t1..t4 and the refused one were acknowledged
            assert (await d.stats())["refused"] == 0

            # A store that does not finish within the wait: the instance reconnects and the broker
            # hands the message to it again (it is not acknowledged in between).
            await publish(_event("t5"))
            assert await d.batch() == (1, ["t5"])
            assert await d.batch(timeout=10.0) == (2, ["t5"])
            d.tell("store 2")
            assert (await d.stats())["stalls"] == 1
            await asyncio.sleep(0.3)
            await d.kill_9()
            e = await instance()
            await e.nothing_more()
        # Counted here, outside the instances: each event handed over once more per kill that
        # caught it unacknowledged, and once more for the stalled store.
        assert handed == Counter({"t1": 2, "t2": 2, "t3": 2, "t4": 1, "t5": 2}), handed
    finally:
        for inst in started:
            await inst.stop()
