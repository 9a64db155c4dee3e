"""Frames to devices: the coordinator session's send queue, one frame in flight, each outbound id
sent at most once (across restarts too), and what became of it as a `DeliveryResult`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import zigpy.backups
import zigpy.endpoint
import zigpy.exceptions
import zigpy.state
import zigpy.types as zt
from bellows.exception import ControllerError, EzspError

from ams_adapters.contract import SubmitOutcome, SubmitResult
from ams_adapters.radio.errors import CbkeNotSupported
from ams_adapters.radio.events import (
    Delivery,
    DeliveryResult,
    OutboundFrame,
)
from ams_adapters.radio.session_core import (
    KEY_ESTABLISHMENT,
    MAX_FRAME_SIZE,
    SessionCore,
    zcl_tsn,
)
from ams_adapters.radio.state import OutboundState
from zigbee_se import SE_PROFILE_ID, DecodeError, decode_frame


class FrameSending(SessionCore):
    async def submit(self, items: Sequence[OutboundFrame]) -> list[SubmitResult]:
        """Queue frames for devices. An outbound id is never sent twice, across restarts too:
        the route's state store remembers every id it accepted and what became of it."""
        results = []
        for item in items:
            if item.outbound_id in self._outcomes:  # this process has it already
                results.append(self._outcomes[item.outbound_id])
                continue
            accepted = SubmitResult(item.outbound_id, SubmitOutcome.ACCEPTED, reference=item.outbound_id)
            record = await self.state.outbound(item.outbound_id)
            if record is not None:
                result = await self._resubmitted(item, record.state, record.reason, accepted)
            else:
                reason = self._reject_reason(item)
                if reason is not None:
                    result = SubmitResult(item.outbound_id, SubmitOutcome.REJECTED, reason=reason)
                else:
                    await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.QUEUED)
                    self._queue.put_nowait(item)
                    result = accepted
            self._outcomes[item.outbound_id] = result
            results.append(result)
        return results

    async def _resubmitted(
        self, item: OutboundFrame, state: OutboundState, reason: str | None, accepted: SubmitResult
    ) -> SubmitResult:
        """An id an earlier process accepted: its outcome again, never a second transmission
        of something that may have reached the device."""
        if state is OutboundState.QUEUED or (state is OutboundState.SENDING and item.idempotent):
            self._queue.put_nowait(item)  # it never left (or may safely leave again)
            return accepted
        if state is OutboundState.SENDING:
            reason = "the gateway stopped while this was being sent: not repeated"
            await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.UNKNOWN, reason)
            state = OutboundState.UNKNOWN
        self._emit(DeliveryResult(item.outbound_id, item.eui64, Delivery(state.value), reason))
        return accepted

    def _reject_reason(self, item: OutboundFrame) -> str | None:
        if item.cluster_id == KEY_ESTABLISHMENT:
            return str(CbkeNotSupported("cannot send Key Establishment frames"))
        limit = MAX_FRAME_SIZE
        if len(item.zcl_frame) > limit:
            return f"zcl_frame={len(item.zcl_frame)} bytes: limit {limit} (no APS fragmentation)"
        try:
            zt.EUI64.convert(item.eui64)
        except ValueError:
            return f"eui64={item.eui64!r}: not an EUI-64 (aa:bb:cc:dd:ee:ff:00:11)"
        try:
            decode_frame(item.cluster_id, item.zcl_frame)
        except DecodeError as exc:
            return f"zcl_frame: {exc}"
        return None

    async def _send_loop(self) -> None:
        while True:
            item = await self._queue.get()
            while True:
                if item.expires_at is None:
                    await self._connected.wait()
                else:  # an item waiting for the coordinator still expires on time
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._connected.wait(), max(item.expires_at - time.time(), 0))
                if item.expires_at is not None and time.time() >= item.expires_at:
                    outcome: DeliveryResult | None = DeliveryResult(
                        item.outbound_id, item.eui64, Delivery.EXPIRED, "expired before sending"
                    )
                else:
                    outcome = await self._send_one(item)
                if outcome is not None:
                    await self.state.record_outbound(
                        item.outbound_id, item.eui64, OutboundState(outcome.outcome.value), outcome.reason
                    )
                    self._emit(outcome)
                    break
                # The frame never reached the coordinator: send it once reconnected.

    async def _send_one(self, item: OutboundFrame) -> DeliveryResult | None:
        app = self.app
        ieee = zt.EUI64.convert(item.eui64)
        device = app.devices.get(ieee) if app is not None else None
        if device is None:
            return DeliveryResult(item.outbound_id, item.eui64, Delivery.FAILED, "unknown device")
        dst_ep = self._device_endpoint(device, item.cluster_id)
        # Written before the frame leaves: a process killed from here on leaves "sending",
        # which a restarted route reports as unknown instead of sending again.
        await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.SENDING)
        request = asyncio.get_running_loop().create_task(
            app.request(
                device,
                SE_PROFILE_ID,
                item.cluster_id,
                self.config.se_endpoint,
                dst_ep,
                zcl_tsn(item.zcl_frame),
                item.zcl_frame,
                expect_reply=False,  # replies on 0x0109 come through the packet hook
                ask_for_ack=True,
                aps_encryption=True,
            )
        )
        self._inflight = request
        try:
            await asyncio.wait({request})
            if request.cancelled():
                # bellows leaves a command pending across an NCP reset until its 10 s timeout;
                # the route gives up on it when the connection drops (see _on_connection_lost).
                return self._unknown(item, "coordinator lost during send")
            request.result()
        except zigpy.exceptions.DeliveryError as exc:
            if not self._connected.is_set() or exc.status is None:
                return self._unknown(item, f"coordinator lost during send: {exc}")
            status = getattr(exc.status, "name", str(exc.status))
            return DeliveryResult(item.outbound_id, item.eui64, Delivery.FAILED, status)
        except (ControllerError, EzspError) as exc:
            # bellows checks "running" before touching the serial port: nothing went out.
            if "not running" in str(exc):
                self._connected.clear()
                await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.QUEUED)
                return None
            return self._unknown(item, repr(exc))
        except Exception as exc:  # timeouts, NCP failures: outcome unknown
            return self._unknown(item, repr(exc) or type(exc).__name__)
        finally:
            self._inflight = None
        self.esi.observe(item.cluster_id, item.zcl_frame, self.clock(), item.eui64)
        return DeliveryResult(item.outbound_id, item.eui64, Delivery.DELIVERED)

    def _unknown(self, item: OutboundFrame, reason: str) -> DeliveryResult | None:
        if item.idempotent:
            return None  # safe to send again once the coordinator is back
        return DeliveryResult(item.outbound_id, item.eui64, Delivery.UNKNOWN, reason)

    @staticmethod
    def _device_endpoint(device: Any, cluster_id: int) -> int:
        """The device endpoint on profile 0x0109 that is a client of the cluster."""
        se_eps = [ep for ep_id, ep in device.endpoints.items() if ep_id and ep.profile_id == SE_PROFILE_ID]
        for ep in se_eps:
            if cluster_id in ep.out_clusters or cluster_id in ep.in_clusters:
                return int(ep.endpoint_id)
        return int(se_eps[0].endpoint_id) if se_eps else 1
