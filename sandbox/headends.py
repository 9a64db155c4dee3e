"""An emulated head-end configured from a TDSP profile: the profile's transport, its meters' text and
frame limits and its `[emulator]` table become the emulator's settings (simulators do not read the
adapters' profiles themselves)."""

from __future__ import annotations

import ssl
from typing import Any

from ams_adapters.profiles import TdspProfile
from simulators.clock import TimerClock
from simulators.field import SimField
from simulators.headends.core import EmulatorSettings
from simulators.headends.factory import HeadEnd, make_headend
from simulators.headends.faults import Faults


def emulator_settings(profile: TdspProfile, **overrides: Any) -> EmulatorSettings:
    """The emulator's settings for `profile`; `overrides` (latency_median_s, join_window_scale, …) win."""
    return EmulatorSettings.from_profile(profile.emulator, profile.max_text_bytes,
                                         profile.max_frame_size, **overrides)


def headend_for_profile(profile: TdspProfile, field_: SimField, clock: TimerClock, *, host: str = "127.0.0.1",
                        port: int = 0, mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883,
                        topic_prefix: str = "hangw", faults: Faults | None = None, seed: int = 7,
                        ssl_context: ssl.SSLContext | None = None,
                        callback_ssl_context: ssl.SSLContext | None = None, callback_retry_s: float | None = None,
                        callback_urls: tuple[str, ...] = (), **settings: Any) -> HeadEnd:
    """The head-end `profile` names, started by the caller (`await headend.start()`)."""
    return make_headend(profile.transport, emulator_settings(profile, **settings), field_, clock, host=host,
                        port=port, mqtt_host=mqtt_host, mqtt_port=mqtt_port, topic_prefix=topic_prefix,
                        faults=faults, seed=seed, ssl_context=ssl_context,
                        callback_ssl_context=callback_ssl_context, callback_retry_s=callback_retry_s,
                        callback_urls=callback_urls)
