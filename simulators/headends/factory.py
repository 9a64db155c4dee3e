"""Start an emulated head-end speaking one transport, on a ``SimField``, in-process.

The emulator takes its settings as values (``EmulatorSettings``) rather than reading the adapters' TDSP
profile, so ``simulators`` depends only on ``zigbee_se`` and the wire layer (``ams_adapters.wire``);
``sandbox.headends.headend_for_profile`` builds the settings from a TDSP profile.
"""

from __future__ import annotations

import random
import ssl
from typing import Protocol

from simulators.clock import TimerClock
from simulators.field import SimField
from simulators.headends.binary_server import BinaryHeadEnd
from simulators.headends.cim_server import CimHeadEnd
from simulators.headends.core import EmulatorSettings, HeadEndCore
from simulators.headends.faults import Faults
from simulators.headends.multispeak_server import CALLBACK_RETRY_S, MultiSpeakHeadEnd

TRANSPORTS = ("multispeak", "cim", "binary")


class HeadEnd(Protocol):
    core: HeadEndCore

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def down_for(self, seconds: float) -> None: ...


def make_headend(transport: str, settings: EmulatorSettings, field_: SimField, clock: TimerClock, *,
                 host: str = "127.0.0.1", port: int = 0, mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883,
                 topic_prefix: str = "hangw", faults: Faults | None = None, seed: int = 7,
                 ssl_context: ssl.SSLContext | None = None,
                 callback_ssl_context: ssl.SSLContext | None = None, callback_retry_s: float | None = None,
                 callback_urls: tuple[str, ...] = ()) -> HeadEnd:
    """`transport`: multispeak (HTTP on host:port), cim (61968-9 over the MQTT broker at
    mqtt_host:mqtt_port under topic_prefix) or binary (TCP on host:port). MultiSpeak only:
    `callback_retry_s` (how long a failing NOT_Server callback is retried) and `callback_urls`
    (further NOT_Server endpoints tried in turn after a request's responseURL)."""
    core = HeadEndCore(field_, clock, settings, faults, random.Random(seed))
    if transport == "multispeak":
        return MultiSpeakHeadEnd(core, host, port, ssl_context, callback_ssl_context, callback_urls=callback_urls,
                                 callback_retry_s=CALLBACK_RETRY_S if callback_retry_s is None else callback_retry_s)
    if transport == "cim":
        return CimHeadEnd(core, mqtt_host, mqtt_port, topic_prefix)
    if transport == "binary":
        return BinaryHeadEnd(core, host, port)
    raise ValueError(f"transport: {transport!r} is invalid: one of {', '.join(TRANSPORTS)}")
