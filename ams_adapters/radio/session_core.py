"""The coordinator session's state, its ordered state writes and its event queue, shared by the
session's parts (sending, ESI answers, provisioning; `session.py` combines them)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ams_adapters.contract import RouteCapabilities, SubmitResult
from ams_adapters.radio.config import RadioConfig
from ams_adapters.radio.events import (
    OutboundFrame,
    RadioEvent,
)
from ams_adapters.radio.state import MemoryRouteState, RouteStateStore
from zigbee_se.esi import Esi

LOGGER = logging.getLogger(__name__)

KEY_ESTABLISHMENT = 0x0800
# APS payload with APS encryption and no fragmentation.
MAX_FRAME_SIZE = 73
DEVICES_PER_COORDINATOR = 32
MAX_JOIN_WINDOW_S = 254  # permitJoining takes one byte; 255 would mean "forever"


def zcl_tsn(frame: bytes) -> int:
    """The ZCL transaction number: after the manufacturer code when one is present."""
    manufacturer_specific = frame[0] & 0x04
    return frame[3] if manufacturer_specific else frame[1]


class SessionCore:
    if TYPE_CHECKING:
        # What one part calls in another; `CoordinatorSession` (session.py) combines them all.
        async def stop(self) -> None: ...

    def __init__(
        self,
        config: RadioConfig,
        *,
        esi: Esi | None = None,
        state: RouteStateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        # The gateway is the premise's ESI: zigbee_se.esi holds what it sent and answers the
        # devices' Get… requests and Time reads from it, on `clock` (unix seconds).
        self.esi = esi or Esi()
        self.clock = clock
        # Outbound records and the device inventory: the gateway's database in production.
        self.state: RouteStateStore = state if state is not None else MemoryRouteState()
        self._writes: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # bellows runs one EZSP command at a time: one frame in flight, ~34 deliveries/s at
        # 115200 baud (benchmarks/radio.py).
        self.capabilities = RouteCapabilities(
            name="radio",
            batch_size=100,
            rate_limit_per_s=30.0,
            max_in_flight=10_000,
            # No route limit of its own on texts: the frame budget (no APS fragmentation) is it.
            max_text_bytes=None,
            max_frame_size=MAX_FRAME_SIZE,
            extra={
                "device": config.device,
                "cbke": False,
                "devices_per_coordinator": DEVICES_PER_COORDINATOR,
                "se_versions": ("1.0", "1.1", "1.2"),
            },
        )
        self.app: Any = None
        self._events: asyncio.Queue[RadioEvent] = asyncio.Queue()
        self._queue: asyncio.Queue[OutboundFrame] = asyncio.Queue()
        self._outcomes: dict[str, SubmitResult] = {}
        self._connected = asyncio.Event()
        self._joins: dict[str, asyncio.Future[int]] = {}
        self._sender: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._present: set[str] = set()
        self._joined_announced: set[str] = set()
        self._inflight: asyncio.Task[Any] | None = None
        self._decommissioning = False
        # (device EUI-64, cluster) -> device endpoint: SE clients bound to the ESI (in memory;
        # the NCP's binding table is the durable copy).
        self._bindings: dict[tuple[str, int], int] = {}
        # EUI-64 -> (clock time, LQI, RSSI) of the last SE frame received from it (radio/inventory.py).
        self._heard: dict[str, tuple[float, int | None, int | None]] = {}
        # (EUI-64, cluster, ZCL TSN) -> the answer a request of the gateway's own waits for (the
        # meter's Read Attributes Response or GetProfileResponse: radio/metering.py).
        self._awaiting: dict[tuple[str, int, int], asyncio.Future[bytes]] = {}

    def _settle_answer(self, eui64: str, cluster: int, frame: bytes) -> bool:
        """True when `frame` (server to client) answers a request the gateway waits for."""
        if not self._awaiting or len(frame) < 3 or not frame[0] & 0x08:
            return False
        waiting = self._awaiting.get((eui64, cluster, zcl_tsn(frame)))
        if waiting is None or waiting.done():
            return False
        waiting.set_result(frame)
        return True

    @property
    def reachable(self) -> bool:
        return self._connected.is_set()

    def _persist(self, write: Awaitable[None]) -> None:
        """Queue a state write from a zigpy callback (which cannot await): written in order."""
        self._writes.put_nowait(write)

    async def _write_loop(self) -> None:
        while True:
            write = await self._writes.get()
            try:
                await write
            except Exception:  # a failed write is logged; the route keeps working
                LOGGER.exception("radio route state not written")
            finally:
                self._writes.task_done()

    async def flush_state(self) -> None:
        """Wait until every queued state write is done (or there is no writer to do them)."""
        if self._writer is not None and not self._writer.done():
            await self._writes.join()

    def _emit(self, event: RadioEvent) -> None:
        self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[RadioEvent]:
        while True:
            yield await self._events.get()

    async def next_event(self, timeout: float | None = None) -> RadioEvent:
        return await asyncio.wait_for(self._events.get(), timeout)
