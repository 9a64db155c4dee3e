"""What every emulated head-end does, whatever its protocol: takes requests for meters of a
``SimField``, carries them out after a modelled latency (retrying an unreachable meter until the
request's expiration time), correlates device answers back to transactions, runs HAN
provisioning through the meter, and produces notifications, with faults injected on both sides.

Idempotent by transaction id, as a real head-end must be: a request seen before is answered with
its first acknowledgement and never reaches the meter twice (``meter_deliveries`` counts
deliveries per transaction so tests can prove it).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ams_adapters.wire.common import Ack, AckStatus, HeadEndRequest, HeadEndRequestKind, NoteKind, Notification
from ams_adapters.wire.reads import (
    DEFAULT_PAGE_INTERVALS,
    INTERVAL_S,
    IntervalPage,
    IntervalValue,
    ReadRefused,
    RegisterValue,
)
from simulators.addressing import eui64_from_str, eui64_str
from simulators.clock import TimerClock
from simulators.errors import SimulatorError
from simulators.field import SimField
from simulators.han_inventory import inventory_note
from simulators.headends.faults import Faults
from simulators.meter import ALL_DEVICES, HanEvent, MeterEvent, Reachability, RelayedFrame
from zigbee_se import DecodeError, EncodeError, SEVersion, decode_frame, encode_frame

NoteSink = Callable[[Notification], None]
# SE fields that identify what a device answer refers to
_ID_FIELD = {0x0703: "message_id", 0x0700: "issuer_event_id", 0x0701: "issuer_event_id"}


@dataclass(slots=True)
class Transaction:
    request: HeadEndRequest
    ack: Ack
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class EmulatorSettings:
    latency_median_s: float = 0.05
    latency_p95_s: float = 0.3
    capacity: int = 5000
    retry_interval_s: float = 0.25
    max_text_bytes: int = 57
    """UTF-8 bytes of message text the head-end's meters take (refused beyond, as a head-end does)."""
    max_frame_size: int | None = 73
    """Single-frame budget of the meters' SE frames; None when the meter fragments (L+G)."""
    join_window_scale: float = 1.0
    """Multiplies join windows (1-30 days on the wire) so tests can see a window lapse."""
    max_intervals_per_read: int = DEFAULT_PAGE_INTERVALS
    """Interval starts the head-end answers per interval read at most (it pages beyond)."""

    @classmethod
    def from_profile(cls, emulator: Mapping[str, Any], max_text_bytes: int, max_frame_size: int | None = 73,
                     **overrides: Any) -> EmulatorSettings:
        data = {k: v for k, v in emulator.items() if k in cls.__dataclass_fields__}
        data |= overrides
        return cls(max_text_bytes=max_text_bytes, max_frame_size=max_frame_size, **data)


class HeadEndCore:
    def __init__(self, field_: SimField, clock: TimerClock, settings: EmulatorSettings | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        self.field = field_
        self.clock = clock
        self.settings = settings or EmulatorSettings()
        self.faults = faults or Faults()
        self.rng = rng or random.Random(7)
        self.transactions: dict[str, Transaction] = {}
        self.meter_deliveries: Counter[str] = Counter()
        self.sink: NoteSink | None = None
        self.open = 0
        self.down = False
        self._by_answer: dict[tuple[str, int, int], str] = {}
        self._last_tx: dict[tuple[str, int], str] = {}
        # A profile-wide command sent to one device (a Write Attributes): its answer carries no SE
        # id, only the request's ZCL sequence number. (meter, cluster, device, tsn) -> (txid, command id)
        self._by_tsn: dict[tuple[str, int, bytes, int], tuple[str, int]] = {}
        self._prov: dict[tuple[str, bytes], str] = {}
        self.stats: Counter[str] = Counter()
        self.received: list[tuple[float, int]] = []
        """(clock time, requests in it) per request message that arrived: what the head-end was
        sent and when, as a test of a client's batching and pacing counts it."""
        self._unsubscribe = field_.subscribe(self._from_field)
        sigma = math.log(max(self.settings.latency_p95_s, self.settings.latency_median_s * 1.0001)
                         / self.settings.latency_median_s) / 1.645
        self._sigma = sigma

    def close(self) -> None:
        self._unsubscribe()
        self.sink = None

    # ------------------------------------------------------------------ requests
    def receive(self, requests: int) -> None:
        """A front-end got one message carrying `requests` requests (before handling them)."""
        self.received.append((self.clock.now(), requests))

    def handle(self, req: HeadEndRequest) -> Ack | None:
        """The synchronous answer, or None when the timeout fault withholds it (the request is
        still carried out)."""
        known = self.transactions.get(req.transaction_id)
        if known is not None:
            self.stats["duplicate_requests"] += 1
            return known.ack
        f = self.faults
        r = self.rng.random
        if r() < f.error_rate:
            self.stats["injected_errors"] += 1
            return Ack(req.transaction_id, AckStatus.ERROR, "injected head-end error")
        if r() < f.busy_rate or self.open >= self.settings.capacity:
            self.stats["busy"] += 1
            return Ack(req.transaction_id, AckStatus.BUSY, "head-end at capacity", 0.2)
        refusal = self._refusal(req)
        ack = Ack(req.transaction_id, AckStatus.REJECTED, refusal) if refusal else Ack(req.transaction_id, AckStatus.OK)
        txn = Transaction(req, ack)
        self.transactions[req.transaction_id] = txn
        if ack.status is AckStatus.OK:
            self.open += 1
            self.clock.call_later(self._latency(), self._carry_out, txn)
        if r() < f.timeout_rate:
            self.stats["withheld_answers"] += 1
            return None
        return ack

    def _refusal(self, req: HeadEndRequest) -> str | None:
        try:
            self.field.meter(req.esi_id)
        except SimulatorError:
            return f"hanInterfaceID {req.esi_id}: no such meter at this head-end"
        if req.kind is HeadEndRequestKind.TEXT:
            text = str(req.fields.get("message", ""))
            if req.frame:
                try:
                    text = str(decode_frame(0x0703, req.frame).fields.get("message", ""))
                except DecodeError:
                    return "seFrame: not a decodable DisplayMessage"
            size = len(text.encode("utf-8"))
            if size > self.settings.max_text_bytes:
                return f"message: {size} UTF-8 bytes, limit {self.settings.max_text_bytes}"
        if req.target == "device" and not req.eui64:
            return "hanDeviceID: required for a device target"
        return None

    def _latency(self) -> float:
        return self.settings.latency_median_s * math.exp(self._sigma * self.rng.gauss(0.0, 1.0))

    # ------------------------------------------------------------------ meter reads (issue 16)
    def read_intervals(self, esi_id: str, start: int, end: int, limit: int) -> IntervalPage:
        """A synchronous interval read, as head-ends answer them from the reads they collected: the
        meter's 15-minute values starting in [start, end) that have ended, at most
        min(`limit`, the head-end's own page size) interval starts, with where to go on from.
        Raises `ReadRefused` (no such meter, meter unreachable, busy, head-end error)."""
        f = self.faults
        if self.rng.random() < f.error_rate:
            self.stats["injected_errors"] += 1
            raise ReadRefused("injected head-end error", retry_after_s=0.5)
        if self.rng.random() < f.busy_rate:
            self.stats["busy"] += 1
            raise ReadRefused("head-end at capacity", retry_after_s=0.2, busy=True)
        try:
            meter = self.field.meter(esi_id)
        except SimulatorError:
            raise ReadRefused(f"meterID {esi_id}: no such meter at this head-end", permanent=True) from None
        if not meter.reachable:
            raise ReadRefused(f"meterID {esi_id}: the meter is unreachable", retry_after_s=30.0)
        page = max(1, min(limit, self.settings.max_intervals_per_read))
        stop = min(end, start + page * INTERVAL_S)
        reads = meter.read_usage(start, stop)
        values = [IntervalValue(r.start, r.length_s, r.channel, r.value_wh, r.quality) for r in reads]
        self.stats["interval_reads"] += 1
        self.stats["intervals_read"] += len(values)
        if values and self.rng.random() < f.bad_read_rate:  # a garbled answer: the adapter must refuse it
            self.stats["bad_reads"] += 1
            bad = values[0]
            values[0] = IntervalValue(bad.start, bad.length_s, bad.channel, -bad.value_wh - 1, bad.quality)
        # More to read only where the page stopped short of `end` and the meter has ended intervals beyond it.
        more = stop < end and stop <= self.clock.now() - INTERVAL_S
        return IntervalPage(esi_id, tuple(values), stop if more else None)

    def register_of(self, esi_id: str) -> RegisterValue:
        """The meter's registers now (`SimMeter.register_read`: delivered, and the demand of the last
        ended interval; the simulated meter keeps no generation register, so none is reported)."""
        now = self.field.meter(esi_id).register_read()
        return RegisterValue(now.at, now.delivered_wh, None, now.demand_w)

    # ------------------------------------------------------------------ carrying out
    def _carry_out(self, txn: Transaction) -> None:
        req = txn.request
        if txn.done:
            return
        if self.clock.now() >= req.expires_at:
            # MultiSpeak: after expirationTime the publisher discards the request, no response
            self._close(txn)
            self.stats["expired_at_headend"] += 1
            return
        if req.kind.provisioning:
            self._provision(txn)
            return
        meter = self.field.meter(req.esi_id)
        if not meter.reachable or self.rng.random() < self.faults.unreachable_rate:
            self.stats["meter_unreachable_retries"] += 1
            self.clock.call_later(self.settings.retry_interval_s, self._carry_out, txn)
            return
        if req.kind is HeadEndRequestKind.METER_READ:  # an on-demand read: the meter's registers now
            self._close(txn)
            self.stats["meter_reads"] += 1
            self._emit(Notification(NoteKind.METER_READ, req.transaction_id, req.esi_id, self.clock.now(),
                                    register=self.register_of(req.esi_id)))
            return
        if req.kind is HeadEndRequestKind.HAN_INVENTORY:  # a status query: the meter's answer
            self._close(txn)
            self.stats["inventories"] += 1
            self._emit(inventory_note(req.transaction_id, meter, self.clock.now()))
            return
        try:
            frame = req.frame or encode_frame(req.cluster_id, req.command, dict(req.fields),
                                              se_version=meter.se_version, tsn=self.rng.randrange(256),
                                              max_frame_size=self.settings.max_frame_size)
        except EncodeError as exc:
            self._close(txn)
            self._emit(Notification(NoteKind.FAILED, req.transaction_id, req.esi_id, self.clock.now(),
                                    reason=f"SE frame: {exc}"))
            return
        address: bytes | str = eui64_from_str(req.eui64) if req.target == "device" and req.eui64 else ALL_DEVICES
        self._remember(req, frame)
        if isinstance(address, bytes) and len(frame) >= 3 and frame[0] & 0x03 == 0:  # global, no manufacturer code
            self._by_tsn[(req.esi_id, req.cluster_id, address, frame[1])] = (req.transaction_id, frame[2])
        self.meter_deliveries[req.transaction_id] += 1
        self.field.send(req.esi_id, address, req.cluster_id, frame)
        self._close(txn)
        self._emit(Notification(NoteKind.DELIVERED, req.transaction_id, req.esi_id, self.clock.now()))

    def _remember(self, req: HeadEndRequest, frame: bytes) -> None:
        self._last_tx[(req.esi_id, req.cluster_id)] = req.transaction_id
        name = _ID_FIELD.get(req.cluster_id)
        try:
            fields = req.fields or decode_frame(req.cluster_id, frame).fields
        except DecodeError:
            return
        if name and name in fields:
            self._by_answer[(req.esi_id, req.cluster_id, int(fields[name]))] = req.transaction_id

    def _close(self, txn: Transaction) -> None:
        if not txn.done:
            txn.done = True
            self.open -= 1

    def _provision(self, txn: Transaction) -> None:
        req = txn.request
        now = self.clock.now
        try:
            if req.kind is HeadEndRequestKind.INITIALIZE_HAN:
                self.field.initialize_han(req.esi_id)
                state = "done"
            elif req.kind is HeadEndRequestKind.PROVISION_DEVICE:
                eui = eui64_from_str(req.eui64 or "")
                window = (req.join_window_s or 86_400) * self.settings.join_window_scale
                self._prov[(req.esi_id, eui)] = req.transaction_id
                self.field.provision_device(req.esi_id, eui, link_key=req.link_key, join_window_s=max(1.0, window))
                self.clock.call_later(window, self._window_lapsed, req.esi_id, eui, req.transaction_id)
                state = "requested"
            elif req.kind is HeadEndRequestKind.DELETE_DEVICE:
                self.field.delete_device(req.esi_id, eui64_from_str(req.eui64 or ""))
                state = "deleted"
            elif req.kind is HeadEndRequestKind.CLEAR_DEVICES:
                self.field.clear_devices(req.esi_id)
                state = "done"
            else:
                self.field.decommission_han(req.esi_id)
                state = "done"
        except SimulatorError as exc:
            if "unreachable" in str(exc.limit) and now() < req.expires_at:
                self.clock.call_later(self.settings.retry_interval_s, self._carry_out, txn)
                return
            self._close(txn)
            self._emit(Notification(NoteKind.PROVISIONING, req.transaction_id, req.esi_id, now(), state="failed",
                                    eui64=req.eui64, reason=f"{exc.field}: {exc.limit}"))
            return
        if state != "requested":
            self._close(txn)
        self._emit(Notification(NoteKind.PROVISIONING, req.transaction_id, req.esi_id, now(), state=state,
                                eui64=req.eui64))

    def _window_lapsed(self, esi_id: str, eui: bytes, txid: str) -> None:
        txn = self.transactions.get(txid)
        if txn is None or txn.done:
            return
        self._close(txn)
        self._emit(Notification(NoteKind.PROVISIONING, txid, esi_id, self.clock.now(), state="failed",
                                eui64=eui64_str(eui), reason="join_window_expired"))

    # ------------------------------------------------------------------ from the meters
    def _from_field(self, event: MeterEvent) -> None:
        now = self.clock.now()
        if isinstance(event, Reachability):
            self._emit(Notification(NoteKind.REACHABILITY, "", event.meter_id, event.time,
                                    state="reachable" if event.reachable else "unreachable"))
        elif isinstance(event, HanEvent):
            self._han_event(event)
        elif isinstance(event, RelayedFrame):
            txid = self._answer_of(event)
            if txid is not None:
                self._emit(Notification(NoteKind.DEVICE_RESPONSE, txid, event.meter_id, now,
                                        eui64=eui64_str(event.eui64), cluster_id=event.cluster_id, frame=event.frame))
            else:
                self.stats["unsolicited_frames"] += 1

    def _answer_of(self, event: RelayedFrame) -> str | None:
        name = _ID_FIELD.get(event.cluster_id)
        try:
            decoded = decode_frame(event.cluster_id, event.frame)
        except DecodeError:
            return self._last_tx.get((event.meter_id, event.cluster_id))
        if decoded.command in ("read_attributes", "read_attributes_response", "get_current_price",
                               "get_scheduled_events", "get_last_message", "get_scheduled_prices"):
            return None
        if decoded.command in ("write_attributes_response", "default_response"):
            sent = self._by_tsn.get((event.meter_id, event.cluster_id, bytes(event.eui64), decoded.tsn))
            # A Write Attributes Response answers Write Attributes (0x02) or its undivided form (0x03).
            writes = decoded.command == "write_attributes_response"
            answers = (0x02, 0x03) if writes else (decoded.fields["command_id"],)
            if sent is not None and sent[1] in answers:
                return sent[0]
        if name and name in decoded.fields:
            return self._by_answer.get((event.meter_id, event.cluster_id, int(decoded.fields[name])))
        return self._last_tx.get((event.meter_id, event.cluster_id))

    def _han_event(self, event: HanEvent) -> None:
        if event.eui64 is None or event.kind not in ("find_pending", "joined", "join_failed"):
            return
        txid = self._prov.get((event.meter_id, event.eui64))
        txn = self.transactions.get(txid or "")
        if txid is None or txn is None or txn.done:
            return
        state = {"find_pending": "find_pending", "joined": "joined", "join_failed": "failed"}[event.kind]
        if state != "find_pending":
            self._close(txn)
        self._emit(Notification(NoteKind.PROVISIONING, txid, event.meter_id, event.time, state=state,
                                eui64=eui64_str(event.eui64), reason=event.reason))

    # ------------------------------------------------------------------ notifications out
    def _emit(self, note: Notification) -> None:
        if self.sink is None:
            return
        f = self.faults
        r = self.rng.random
        if r() < f.drop_callback_rate:
            self.stats["dropped_callbacks"] += 1
            return
        if r() < f.late_callback_rate and (not f.late_kinds or note.kind.value in f.late_kinds):
            self.stats["late_callbacks"] += 1
            self.clock.call_later(f.late_callback_s, self._send_note, note)
        else:
            self.sink(note)
        if r() < f.duplicate_callback_rate:
            self.stats["duplicated_callbacks"] += 1
            self.clock.call_later(0.01 + r() * 0.2, self._send_note, note)

    def _send_note(self, note: Notification) -> None:
        if self.sink is not None:  # the front-end may have closed meanwhile
            self.sink(note)

    # ------------------------------------------------------------------ run-time faults
    def meter_unreachable_for(self, esi_id: str, seconds: float) -> None:
        self.field.meter(esi_id).unreachable_for(seconds)

    def se_version_of(self, esi_id: str) -> SEVersion:
        return self.field.meter(esi_id).se_version
