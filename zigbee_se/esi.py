"""The ESI's Smart Energy server rules: what it holds and what it answers (SE_BEHAVIOUR.md §2-5).

An ESI remembers what it passed on to its devices — load-control events (with supersede), the last
message and the CancelAllMessages it sent, prices and block periods — and answers the devices' own
requests from that: GetScheduledEvents, GetCurrentPrice, GetScheduledPrices, GetBlockPeriods,
GetLastMessage, GetMessageCancellation, Time reads, and the Default Responses to their answers.

Pure: no I/O and no clock of its own. Callers pass ``now`` (unix seconds) and send the replies
themselves: the simulated meter (simulators/meter.py) on its virtual clock, the gateway's radio
route (ams_adapters/radio/esi_answers.py) through the coordinator. One module, so the two cannot
disagree about what an ESI says.

Rules worth knowing (each cited where it is applied):

* An item that started "now" (start time 0) is re-sent with start 0 and the whole minutes that
  remain, rounded **down**, so no device keeps it past its real end (it ends up to 59 s early);
  in its last minute it is not re-sent at all.
* A load-control event is superseded at the ESI by a newer one that overlaps it in time and
  reaches every device it reaches; from then on it is neither scheduled nor active, so
  GetScheduledEvents does not re-issue it.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

from zigbee_se.attributes import TimeStatus
from zigbee_se.clusters import ClusterId
from zigbee_se.codec import DEFAULT_SE_VERSION, DecodedFrame, decode_frame, encode_frame
from zigbee_se.conversions import UNTIL_CHANGED, ZIGBEE_EPOCH_UNIX
from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.header import FrameType
from zigbee_se.schema import Direction
from zigbee_se.versions import SEVersion

TIME, PRICE, DRLC, MESSAGING = ClusterId.TIME, ClusterId.PRICE, ClusterId.DRLC, ClusterId.MESSAGING

# The Time Status an ESI advertises: Master and Synchronized make devices accept it as a time source
# at all, Superseding makes them prefer it over any other master (SE_BEHAVIOUR.md §5, SL-REG).
# MasterZoneDst is not claimed: the ESI does not know the premise's time zone or DST rules.
ESI_TIME_STATUS = TimeStatus.MASTER | TimeStatus.SYNCHRONIZED | TimeStatus.SUPERSEDING
TIME_VALID_FOR_S = 86_400

# ZCL statuses (zigpy.zcl.foundation.Status values)
SUCCESS = 0x00
UNSUP_CLUSTER_COMMAND = 0x81
UNSUPPORTED_ATTRIBUTE = 0x86
NOT_FOUND = 0x8B

# Device requests the ESI answers itself; a meter need not pass them upstream.
REQUESTS = frozenset({
    "get_current_price", "get_scheduled_prices", "get_block_periods", "get_scheduled_events",
    "get_last_message", "get_message_cancellation", "read_attributes",
})
# Device answers the ESI acknowledges with Default Response SUCCESS (SE_BEHAVIOUR.md §2.3, §3.3, §4.4).
ACKNOWLEDGED = frozenset({"report_event_status", "price_acknowledgement", "message_confirmation"})

MAX_CANCELLATIONS = 5  # CancelAllMessages kept for GetMessageCancellation (oldest dropped)
# PublishBlockPeriod (SE 1.2) duration timebase, low nibble of BlockPeriodDurationType
_MINUTES_PER = {0: 1, 1: 1440, 2: 10_080}
_MONTHS = 3


class Reply(NamedTuple):
    """One frame the ESI sends back to the device that asked."""

    cluster_id: int
    frame: bytes


def to_utc(unix: float) -> int:
    """Unix seconds -> SE UTCTime; never 0, which means "now" in SE commands."""
    return max(1, int(unix) - ZIGBEE_EPOCH_UNIX)


def from_utc(utc: int) -> float:
    return float(utc + ZIGBEE_EPOCH_UNIX)


def _add_months(unix: float, months: int) -> float:
    """A calendar month step (block periods with a monthly timebase), same day or the month's last."""
    t = dt.datetime.fromtimestamp(unix, dt.UTC)
    index = t.month - 1 + months
    year, month = t.year + index // 12, index % 12 + 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day).timestamp()


class Held(NamedTuple):
    """A price, block period, event or message the ESI holds: the fields as received (shared with
    the decoder's cache, never changed) and its absolute unix start and end (None: until changed).
    A tuple: a fleet of meters makes one per frame each, and tables share them."""

    command: str
    fields: Mapping[str, Any]
    ident: int
    start: float
    end: float | None
    start_now: bool
    start_key: str = "start_time"
    minutes_key: str | None = "duration_in_minutes"
    superseded_at: float | None = None

    @classmethod
    def timed(cls, command: str, fields: Mapping[str, Any], ident: int, now: float) -> Held:
        """DisplayMessage, PublishPrice, LoadControlEvent: start time 0 = now, minutes 0xFFFF = until changed."""
        start_now = fields["start_time"] == 0
        start = now if start_now else from_utc(fields["start_time"])
        minutes = fields["duration_in_minutes"]
        end = None if minutes == UNTIL_CHANGED else start + minutes * 60
        return cls(command, fields, ident, start, end, start_now)

    @classmethod
    def block_period(cls, fields: Mapping[str, Any], now: float) -> Held:
        """PublishBlockPeriod: SE 1.1 counts minutes; SE 1.2 has a timebase (minutes, days, weeks, months)."""
        start_now = fields["block_period_start_time"] == 0
        start = now if start_now else from_utc(fields["block_period_start_time"])
        count = fields["block_period_duration"]
        timebase = fields.get("block_period_duration_type", 0) & 0x0F
        if timebase == _MONTHS:
            end, minutes_key = _add_months(start, count), None
        else:
            end = start + count * 60 * _MINUTES_PER.get(timebase, 1)
            minutes_key = "block_period_duration" if timebase == 0 else None
        return cls("publish_block_period", fields, fields["issuer_event_id"], start, end, start_now,
                   "block_period_start_time", minutes_key)

    def live_at(self, t: float) -> bool:
        """Not ended and not superseded at t."""
        return (self.end is None or self.end > t) and (self.superseded_at is None or self.superseded_at > t)

    def current_at(self, t: float) -> bool:
        return self.start <= t and self.live_at(t)

    def as_sent(self, now: float) -> dict[str, Any] | None:
        """The fields to re-send at `now`, or None when it must not be re-sent.

        A start-now item goes out as start 0 with the remaining whole minutes rounded down (the
        SE rule, SE_BEHAVIOUR.md §2.1: "adjust the Duration In Minutes field to correspond to the
        remainder"), so a device that learns it now never runs it past its end; in its last
        minute it is not re-sent. A start-now item whose duration is not in minutes (a block
        period in days) goes out with its real start instead, which gives the device the same end.
        """
        f = dict(self.fields)
        if not self.start_now or self.end is None:
            return f
        if self.minutes_key is None:
            f[self.start_key] = to_utc(self.start)
            return f
        remaining = int((self.end - now) // 60)
        if remaining < 1:
            return None
        f[self.minutes_key] = remaining
        return f


def _supersedes(new: Held, old: Held) -> bool:
    """The newer event takes the older one's place on every device the older one reaches: they
    overlap in time (half-open intervals, SE_BEHAVIOUR.md §1.5) and the newer one's device classes
    and enrollment group cover the older one's. A partial overlap is left to the devices."""
    if new.end is not None and new.end <= old.start:
        return False
    if old.end is not None and old.end <= new.start:
        return False
    new_dc, old_dc = new.fields["device_class"], old.fields["device_class"]
    new_ueg = new.fields.get("utility_enrollment_group", 0)
    return old_dc & ~new_dc == 0 and new_ueg in (0, old.fields.get("utility_enrollment_group", 0))


class EsiTables:
    """What one ESI holds for the devices that share it (or for one device, see ``Esi``)."""

    __slots__ = ("block_periods", "cancellations", "events", "message", "prices")

    def __init__(self) -> None:
        self.prices: list[Held] = []
        self.block_periods: list[Held] = []
        self.events: list[Held] = []
        self.message: Held | None = None
        self.cancellations: list[int] = []  # CancelAllMessages implementation times (UTCTime), sorted

    def copy(self) -> EsiTables:
        other = EsiTables()
        other.prices, other.block_periods, other.events = list(self.prices), list(self.block_periods), list(self.events)
        other.message, other.cancellations = self.message, list(self.cancellations)
        return other

    # ------------------------------------------------------------------ frames the ESI passed on
    def record(self, command: str, fields: Mapping[str, Any], now: float) -> None:
        """Remember a server->client SE command sent to the devices (others are ignored)."""
        if command == "publish_price":
            self.prices = _replace(self.prices, Held.timed(command, fields, fields["issuer_event_id"], now), now)
        elif command == "publish_block_period":
            self.block_periods = _replace(self.block_periods, Held.block_period(fields, now), now)
        elif command == "load_control_event":
            self._record_event(Held.timed(command, fields, fields["issuer_event_id"], now), now)
        elif command == "cancel_load_control_event":
            # Gone at once: a late joiner is not told an event that is being cancelled.
            self.events = [e for e in self.events if e.ident != fields["issuer_event_id"]]
        elif command == "cancel_all_load_control_events":
            self.events = []
        elif command in ("display_message", "display_protected_message"):
            # "Nested and overlapping messages are not allowed" (SE_BEHAVIOUR.md §3.1): one message.
            self.message = Held.timed(command, fields, fields["message_id"], now)
        elif command == "cancel_message":
            if self.message is not None and self.message.ident == fields["message_id"]:
                self.message = None
        elif command == "cancel_all_messages":
            self._record_cancel_all(fields["implementation_date_time"], now)

    def _record_event(self, new: Held, now: float) -> None:
        kept: list[Held] = []
        for old in self.events:
            if old.ident == new.ident or not old.live_at(now):
                continue
            if _supersedes(new, old):
                # Not started: superseded at once. Running: it runs on until the newer one starts
                # (SL; SE_BEHAVIOUR.md §1.5), and is re-issued until then.
                until = now if old.start > now else max(now, new.start)
                if old.superseded_at is not None:
                    until = min(until, old.superseded_at)  # an earlier successor still takes over first
                if until <= now:
                    continue
                kept.append(old._replace(superseded_at=until))
            else:
                kept.append(old)
        kept.append(new)
        kept.sort(key=lambda e: (e.start, e.ident))
        self.events = kept

    def _record_cancel_all(self, implementation: int, now: float) -> None:
        at = now if implementation == 0 else from_utc(implementation)
        if self.message is not None:
            if at <= now:
                self.message = None
            elif self.message.end is None or self.message.end > at:
                self.message = self.message._replace(end=at)
        utc = to_utc(at)
        self.cancellations = sorted({*self.cancellations, utc})[-MAX_CANCELLATIONS:]

    # ------------------------------------------------------------------ what the ESI answers from
    def current_price(self, now: float) -> dict[str, Any] | None:
        """The price in force now (SE_BEHAVIOUR.md §4.2), its Current Time set to now."""
        for p in self.prices:
            if p.current_at(now):
                f = p.as_sent(now)
                if f is not None:
                    f["current_time"] = to_utc(now)
                    return f
        return None

    def scheduled_prices(self, start_time: int, count: int, now: float) -> list[dict[str, Any]]:
        """Prices current or scheduled at the start time (0 = now), count 0 = all (§4.3)."""
        t = now if start_time == 0 else from_utc(start_time)
        stamp = {"current_time": to_utc(now)}
        return _sendable([p for p in self.prices if p.live_at(max(t, now))], now, count, stamp)

    def block_periods_from(self, start_time: int, count: int, now: float,
                           tariff_type: int | None = None) -> list[dict[str, Any]]:
        """Block periods in progress or to come at the start time (0 = now), count 0 = all
        "starting with the current block in progress" (§4.5); SE 1.2 filters by tariff type
        (a stored "both", 2, matches either)."""
        t = now if start_time == 0 else from_utc(start_time)
        held = [b for b in self.block_periods if b.live_at(max(t, now))
                and (tariff_type is None or b.fields.get("tariff_type", 0) & 0x0F in (tariff_type & 0x0F, 2))]
        return _sendable(held, now, count)

    def scheduled_events(self, start_time: int, count: int, min_id: int | None,
                         now: float) -> list[dict[str, Any]]:
        """Active and scheduled events (never superseded or ended ones) ending after the start
        time (0 = now), in (start, id) order, count 0 = all (§2.1)."""
        t = now if start_time == 0 else from_utc(start_time)
        held = [e for e in self.events if e.live_at(max(t, now)) and (min_id is None or e.ident >= min_id)]
        return _sendable(held, now, count)

    def last_message(self, now: float) -> tuple[str, dict[str, Any]] | None:
        """(command, fields) of the current or scheduled message (§3.4), as it was sent: a
        protected message stays protected."""
        m = self.message
        if m is None or not m.live_at(now):
            return None
        f = m.as_sent(now)
        return None if f is None else (m.command, f)

    def message_cancellation(self, earliest: int) -> dict[str, Any] | None:
        """The first CancelAllMessages held whose implementation time is at or after `earliest`
        (SE 1.2 GetMessageCancellation)."""
        for utc in self.cancellations:
            if utc >= earliest:
                return {"implementation_date_time": utc}
        return None


def _replace(items: list[Held], new: Held, now: float) -> list[Held]:
    """Prices and block periods: the same issuer event id replaces, ended ones go; (start, id) order."""
    kept = [h for h in items if h.ident != new.ident and h.live_at(now)]
    kept.append(new)
    kept.sort(key=lambda h: (h.start, h.ident))
    return kept


def _sendable(held: list[Held], now: float, count: int,
              extra: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for h in held:
        f = h.as_sent(now)
        if f is None:
            continue
        out.append(f | dict(extra) if extra else f)
        if count and len(out) == count:
            break
    return out


def time_attributes(now: float) -> dict[int, int]:
    """The ESI's Time server attributes: Time, TimeStatus, LastSetTime, ValidUntilTime."""
    utc = to_utc(now)
    return {0x0000: utc, 0x0001: int(ESI_TIME_STATUS), 0x0008: utc, 0x0009: utc + TIME_VALID_FOR_S}


def read_records(values: Mapping[int, Any], attribute_ids: list[int]) -> list[dict[str, Any]]:
    """Read Attributes Response records: the value, or UNSUPPORTED_ATTRIBUTE."""
    records: list[dict[str, Any]] = []
    for a in attribute_ids:
        if a in values:
            records.append({"attribute_id": a, "status": SUCCESS, "value": values[a]})
        else:
            records.append({"attribute_id": a, "status": UNSUPPORTED_ATTRIBUTE})
    return records


class Esi:
    """One ESI and the devices it serves.

    Frames sent to every device go to the premise-wide tables; a frame addressed to one device
    gives that device its own tables (a copy of the premise's, kept up to date with what follows),
    so a device is never answered with another device's message."""

    __slots__ = ("_tsn", "devices", "premise")

    def __init__(self) -> None:
        self.premise = EsiTables()
        self.devices: dict[Hashable, EsiTables] = {}
        self._tsn = 0

    def tables(self, device: Hashable | None = None) -> EsiTables:
        """What `device` is answered from."""
        own = None if device is None else self.devices.get(device)
        return self.premise if own is None else own

    def record(self, command: str, fields: Mapping[str, Any], now: float, device: Hashable | None = None) -> None:
        """A command the ESI sent to `device`, or to all its devices (None)."""
        if device is None:
            self.premise.record(command, fields, now)
            for tables in self.devices.values():
                tables.record(command, fields, now)
            return
        own = self.devices.get(device)
        if own is None:
            own = self.devices[device] = self.premise.copy()
        own.record(command, fields, now)

    def observe(self, cluster_id: int, zcl_frame: bytes, now: float, device: Hashable | None = None) -> None:
        """As ``record``, from the frame's bytes; frames that are not SE server commands are ignored."""
        try:
            frame = decode_frame(cluster_id, zcl_frame)
        except DecodeError:
            return
        if frame.frame_type == FrameType.CLUSTER and frame.direction == Direction.SERVER_TO_CLIENT:
            self.record(frame.command, frame.fields, now, device)

    def forget(self, device: Hashable) -> None:
        """The device left: drop what was addressed to it alone."""
        self.devices.pop(device, None)

    def _next_tsn(self) -> int:
        self._tsn = (self._tsn + 1) & 0xFF
        return self._tsn

    def answer(self, frame: DecodedFrame, now: float, device: Hashable | None = None, *,
               se_version: SEVersion | str = DEFAULT_SE_VERSION,
               attributes: Mapping[int, Mapping[int, Any]] | None = None) -> list[Reply]:
        """The ESI's replies to one frame from `device`, in the order to send them (often none).

        `attributes` adds server clusters the caller hosts besides Time (a meter's Metering
        attributes), by cluster id."""
        if frame.command in ACKNOWLEDGED:  # the common case first: a fleet's devices answering
            return [] if frame.disable_default_response else [_default(frame, SUCCESS)]
        cluster = frame.cluster
        if frame.frame_type == FrameType.GLOBAL:
            if frame.command != "read_attributes":
                return []
            values = time_attributes(now) if cluster == TIME else (attributes or {}).get(cluster)
            if values is None:
                return [_default(frame, UNSUP_CLUSTER_COMMAND)]
            records = read_records(values, frame.fields["attribute_ids"])
            return [Reply(cluster, encode_frame(cluster, "read_attributes_response", {"records": records},
                                                tsn=frame.tsn, direction=Direction.SERVER_TO_CLIENT,
                                                disable_default_response=True))]
        if frame.direction != Direction.CLIENT_TO_SERVER:
            return []
        tables = self.tables(device)
        try:
            replies = self._answer_request(tables, frame, now, SEVersion.parse(se_version))
        except EncodeError:  # something held that this version cannot carry
            replies = None
        if replies is None:
            # Nothing in the codec is left unanswered today; a command added later gets the ZCL
            # error answer (SE_BEHAVIOUR.md §2.3), never a SUCCESS it did not earn.
            return [_default(frame, UNSUP_CLUSTER_COMMAND)]
        return replies or [_default(frame, NOT_FOUND)]

    def _answer_request(self, tables: EsiTables, frame: DecodedFrame, now: float,
                        version: SEVersion) -> list[Reply] | None:
        """Replies to one request ([] = none held: NOT_FOUND), or None for a command the ESI does not serve."""
        command, f, tsn = frame.command, frame.fields, frame.tsn
        if command == "get_current_price":
            price = tables.current_price(now)
            return [] if price is None else [Reply(PRICE, _encode(PRICE, "publish_price", price, version, tsn))]
        if command == "get_scheduled_prices":
            prices = tables.scheduled_prices(f["start_time"], f["number_of_events"], now)
            # SL rewrites each answer to the request's TSN (SE_BEHAVIOUR.md §4.3).
            return [Reply(PRICE, _encode(PRICE, "publish_price", p, version, tsn)) for p in prices]
        if command == "get_block_periods":
            tariff = f.get("tariff_type") if version >= SEVersion.V1_2 else None
            periods = tables.block_periods_from(f["start_time"], f["number_of_events"], now, tariff)
            return [Reply(PRICE, _encode(PRICE, "publish_block_period", b, _block_layout(b), tsn))
                    for b in periods]
        if command == "get_scheduled_events":
            min_id = f.get("issuer_event_id")
            events = tables.scheduled_events(f["start_time"], f["number_of_events"],
                                             None if min_id in (None, 0xFFFFFFFF) else min_id, now)
            # Re-issued as new transactions, default response disabled: the device's RES is its
            # answer (SE_BEHAVIOUR.md §2.3, §7).
            return [Reply(DRLC, _encode(DRLC, "load_control_event", e, version, self._next_tsn(), ddr=True))
                    for e in events]
        if command == "get_last_message":
            held = tables.last_message(now)
            if held is None:
                return []
            name, fields = held
            return [Reply(MESSAGING, _encode(MESSAGING, name, fields, max(version, _since(name)), tsn))]
        if command == "get_message_cancellation":
            cancel = tables.message_cancellation(f["earliest_implementation_time"])
            # The request exists only in SE 1.2, so the asker speaks 1.2.
            return [] if cancel is None else [
                Reply(MESSAGING, _encode(MESSAGING, "cancel_all_messages", cancel, SEVersion.V1_2, tsn))]
        return None


def _since(command: str) -> SEVersion:
    return SEVersion.V1_2 if command == "display_protected_message" else SEVersion.V1_0


def _block_layout(fields: Mapping[str, Any]) -> SEVersion:
    """A block period goes out in the layout it came in (SE 1.1 and 1.2 differ after the duration)."""
    return SEVersion.V1_2 if "block_period_duration_type" in fields else SEVersion.V1_1


def _encode(cluster: int, command: str, fields: Mapping[str, Any], version: SEVersion, tsn: int,
            *, ddr: bool = False) -> bytes:
    return encode_frame(cluster, command, fields, se_version=version, tsn=tsn, disable_default_response=ddr)


def _default(frame: DecodedFrame, status: int) -> Reply:
    return Reply(frame.cluster, encode_frame(
        frame.cluster, "default_response", {"command_id": frame.command_id, "status": status}, tsn=frame.tsn,
        direction=Direction.SERVER_TO_CLIENT, disable_default_response=True))
