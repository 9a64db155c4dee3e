"""Start the emulated head-end a TDSP profile names, on a ``Field``, in-process."""

from __future__ import annotations

import random
import ssl
from typing import Any, Protocol

from ams_adapters.profiles import TdspProfile
from simulators.clock import Clock
from simulators.field import Field
from simulators.headends.core import EmulatorSettings, HeadEndCore
from simulators.headends.faults import Faults


class HeadEnd(Protocol):
    core: HeadEndCore

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def down_for(self, seconds: float) -> None: ...


def make_headend(profile: TdspProfile, field_: Field, clock: Clock, *, host: str = "127.0.0.1", port: int = 0,
                 mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883, topic_prefix: str = "hangw",
                 faults: Faults | None = None, seed: int = 7, ssl_context: ssl.SSLContext | None = None,
                 callback_ssl_context: ssl.SSLContext | None = None, **settings: Any) -> HeadEnd:
    core = HeadEndCore(field_, clock, EmulatorSettings.from_profile(profile.emulator, profile.meter.max_text_length,
                                                                    profile.meter.max_frame_size, **settings),
                       faults, random.Random(seed))
    if profile.transport == "multispeak":
        from simulators.headends.multispeak_server import MultiSpeakHeadEnd
        return MultiSpeakHeadEnd(core, host, port, ssl_context, callback_ssl_context)
    if profile.transport == "cim":
        from simulators.headends.cim_server import CimHeadEnd
        return CimHeadEnd(core, mqtt_host, mqtt_port, topic_prefix)
    from simulators.headends.binary_server import BinaryHeadEnd
    return BinaryHeadEnd(core, host, port)
