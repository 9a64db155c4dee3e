"""The DRLC client (SE 0x0701) event table and its rules, on plain values.

Shared by the thermostat and the load control device. It follows the SE rules by default
("spec") and the Silicon Labs, NXP, Exegin and Freescale variants as ``SE_BEHAVIOUR.md`` §1
records them (``simulators/drlc_rules.py``); the variant comes from the device's firmware
profile. Frames are decoded/encoded by the device; this module only sees field dicts and emits
Report Event Status field dicts through its host.
"""

from __future__ import annotations

from typing import Any, Protocol

from simulators.attribute_writes import WritableAttribute
from simulators.drlc_rules import ISSUER_ID, LATER_START, DrlcRules
from simulators.se_time import UTC_INVALID, from_utc, to_utc
from zigbee_se import EventStatus

NOT_USED_SET_POINT = -0x8000  # int16 -32768 (wire 0x8000)
NOT_USED_OFFSET = 0xFF
NOT_USED_LOAD = -128
NOT_USED_DUTY = 0xFF

# The DRLC client attributes, all read/write (SE 1.x cluster text as zsmartsystems'
# 0701_DemandResponseAndLoadControl.xml quotes it; SE_FRAMES.md §3.7). DeviceClassValue keeps
# its uint16 type "for backwards compatibility" but "should be treated as if it were a 16-bit
# BitMap": both types are accepted, and its bits 12-15 are reserved (no such device classes).
UEG, START_RAND, DURATION_RAND, DEVICE_CLASS = 0x0000, 0x0001, 0x0002, 0x0003
UINT8, UINT16, MAP16 = 0x20, 0x21, 0x19
ATTRIBUTES: dict[int, WritableAttribute] = {
    UEG: WritableAttribute("utility_enrollment_group", (UINT8,), 0x00, 0xFF),
    START_RAND: WritableAttribute("start_randomization_minutes", (UINT8,), 0x00, 0x3C),
    DURATION_RAND: WritableAttribute("duration_randomization_minutes", (UINT8,), 0x00, 0x3C),
    DEVICE_CLASS: WritableAttribute("device_class_value", (UINT16, MAP16), 0x0000, 0x0FFF),
}

SCHEDULED, ACTIVE, DONE = 0, 1, 2
TICK = 1.0  # Silicon Labs' DRLC table runs on a 1 s tick; "next tick" actions happen after it


class DrlcHost(Protocol):
    """What the DRLC client needs from its device."""

    def local_now(self) -> float: ...
    def at_local(self, when: float, cb: Any, *args: Any) -> Any: ...
    def random_below(self, n: int) -> int: ...
    def send_res(self, fields: dict[str, Any], tsn: int | None) -> None: ...
    def send_default_response_drlc(self, command_id: int, status: int, tsn: int) -> None: ...
    def apply_event(self, event: LoadControlEvent | None) -> None: ...
    def applied_values(self) -> tuple[int, int, int, int]: ...


class LoadControlEvent:
    """One stored event. Times are the device's local unix seconds."""

    __slots__ = (
        "avg_load", "cooling_offset", "cooling_set_point", "criticality", "device_class",
        "duration_s", "duty_cycle", "event_control", "heating_offset", "heating_set_point",
        "issuer_event_id", "opted_in", "partial", "rd", "rs", "start", "start_now", "state",
        "superseded_by", "timer", "ueg", "waiting",
    )

    def __init__(self, f: dict[str, Any], start: float, start_now: bool) -> None:
        self.issuer_event_id: int = f["issuer_event_id"]
        self.device_class: int = f["device_class"]
        self.ueg: int = f["utility_enrollment_group"]
        self.start: float = start
        self.start_now = start_now
        self.duration_s: int = int(f["duration_in_minutes"]) * 60
        self.criticality: int = f["criticality_level"]
        self.cooling_offset: int = f.get("cooling_temperature_offset", NOT_USED_OFFSET)
        self.heating_offset: int = f.get("heating_temperature_offset", NOT_USED_OFFSET)
        self.cooling_set_point: int = _sp(f.get("cooling_temperature_set_point"))
        self.heating_set_point: int = _sp(f.get("heating_temperature_set_point"))
        self.avg_load: int = _s8(f.get("average_load_adjustment_percentage", NOT_USED_LOAD))
        self.duty_cycle: int = f.get("duty_cycle", NOT_USED_DUTY)
        self.event_control: int = f.get("event_control", 0)
        self.rs = 0.0
        self.rd = 0.0
        self.state = SCHEDULED
        self.opted_in = True
        self.partial = False
        self.timer: Any = None
        self.superseded_by: LoadControlEvent | None = None
        self.waiting = False

    @property
    def end(self) -> float:
        """Nominal end (no randomization)."""
        return self.start + self.duration_s

    @property
    def effective_start(self) -> float:
        return self.start + self.rs

    @property
    def effective_end(self) -> float:
        return self.start + self.rs + self.duration_s + self.rd


def _sp(v: Any) -> int:
    """Set points as signed int16 with -32768 meaning not used, whatever the codec hands us."""
    if v is None:
        return -0x8000
    n = int(v)
    return n - 0x10000 if n >= 0x8000 else n


def _s8(v: Any) -> int:
    n = int(v)
    return n - 0x100 if n >= 0x80 else n


class DrlcClient:
    """Event table + timers of one DRLC client endpoint."""

    __slots__ = (
        "device_class", "duration_randomization_minutes", "events", "host", "refuse_mandatory",
        "rules", "start_randomization_minutes", "table_size", "ueg",
    )

    def __init__(self, host: DrlcHost, rules: DrlcRules, *, device_class: int, ueg: int,
                 start_rand_min: int, duration_rand_min: int, table_size: int,
                 refuse_mandatory: bool = False) -> None:
        self.host = host
        self.rules = rules
        self.device_class = device_class  # DeviceClassValue attribute 0x0003
        self.ueg = ueg  # UtilityEnrollmentGroup attribute 0x0000
        self.start_randomization_minutes = start_rand_min  # attribute 0x0001
        self.duration_randomization_minutes = duration_rand_min  # attribute 0x0002
        self.table_size = table_size
        self.events: list[LoadControlEvent] = []
        self.refuse_mandatory = refuse_mandatory  # opt-out of criticality >= 7 refused

    # ----------------------------------------------------------------- attributes
    def attribute_values(self) -> dict[int, int]:
        return {UEG: self.ueg, START_RAND: self.start_randomization_minutes,
                DURATION_RAND: self.duration_randomization_minutes, DEVICE_CLASS: self.device_class}

    def set_attribute(self, attribute_id: int, value: int) -> None:
        """A written attribute takes effect at once: the UEG and device class for the next event
        or cancel filtered, the randomization for the next event drawn (stored events keep
        theirs, as a device that drew them at receipt does)."""
        if attribute_id == UEG:
            self.ueg = value
        elif attribute_id == START_RAND:
            self.start_randomization_minutes = value
        elif attribute_id == DURATION_RAND:
            self.duration_randomization_minutes = value
        elif attribute_id == DEVICE_CLASS:
            self.device_class = value
        else:
            raise KeyError(f"DRLC client attribute 0x{attribute_id:04x} is not writable here")

    # ----------------------------------------------------------------- filters and helpers
    def matches(self, device_class: int, ueg: int) -> bool:
        """Device class and enrollment group filter (SE_BEHAVIOUR.md §1.1)."""
        if self.rules.mask_class_bits and device_class & 0xF000:
            return False  # NXP "SE test 10.18.1": reserved class bits -> ignored
        if not device_class & self.device_class:
            return False
        if ueg in (0, self.ueg):
            return True
        return self.ueg == 0 and self.rules.ueg0_matches_all

    def live(self) -> list[LoadControlEvent]:
        return [e for e in self.events if e.state != DONE and e.superseded_by is None]

    def find(self, issuer_event_id: int) -> LoadControlEvent | None:
        for e in self.events:
            if e.issuer_event_id == issuer_event_id and e.state != DONE:
                return e
        return None

    def active(self) -> LoadControlEvent | None:
        for e in self.events:
            if e.state == ACTIVE:
                return e
        return None

    def _draw(self, minutes: int) -> float:
        if minutes <= 0:
            return 0.0
        if self.rules.randomize_in_minutes:
            return float(self.host.random_below(minutes + 1) * 60)
        return float(self.host.random_below(minutes * 60))

    def _res(self, ev: LoadControlEvent | None, status: int, tsn: int | None = None,
             issuer_event_id: int | None = None) -> None:
        rules = self.rules
        now_utc = to_utc(self.host.local_now())
        if ev is None:
            # A rejection for an event we do not hold: the requested id, zeros/"not used" elsewhere.
            fields: dict[str, Any] = {
                "issuer_event_id": issuer_event_id or 0, "event_status": status,
                "event_status_time": now_utc, "criticality_level_applied": 0,
                "cooling_temperature_set_point_applied": NOT_USED_SET_POINT,
                "heating_temperature_set_point_applied": NOT_USED_SET_POINT,
                "average_load_adjustment_percentage_applied": NOT_USED_LOAD,
                "duty_cycle_applied": NOT_USED_DUTY, "event_control": 0,
            }
        else:
            if rules.report_applied == "not_used":
                cool, heat, avg, duty, ctl = (
                    NOT_USED_SET_POINT, NOT_USED_SET_POINT, NOT_USED_LOAD, NOT_USED_DUTY, 0)
            elif rules.report_applied == "applied":
                cool, heat, avg, duty = self.host.applied_values()
                ctl = ev.event_control
            else:
                cool = ev.cooling_set_point
                heat = ev.heating_set_point
                avg, duty, ctl = ev.avg_load, ev.duty_cycle, ev.event_control
            fields = {
                "issuer_event_id": ev.issuer_event_id, "event_status": status,
                "event_status_time": now_utc, "criticality_level_applied": ev.criticality,
                "cooling_temperature_set_point_applied": cool,
                "heating_temperature_set_point_applied": heat,
                "average_load_adjustment_percentage_applied": avg,
                "duty_cycle_applied": duty, "event_control": ctl,
            }
        if rules.signature == "dummy":
            fields["signature_type"] = 0x00
            fields["signature"] = b"\xff" * 42
        elif rules.signature == "ecdsa":
            # FSL signed its RES (SE 1.0). No certificate here: a fixed dummy ECDSA signature.
            fields["signature_type"] = 0x01
            fields["signature"] = bytes(range(42))
        else:
            fields["signature_type"] = 0x00
            fields["signature"] = None  # EXG: no signature bytes at all (18-byte payload)
        self.host.send_res(fields, tsn)

    # ----------------------------------------------------------------- LoadControlEvent
    def on_load_control_event(self, f: dict[str, Any], tsn: int) -> None:
        rules = self.rules
        if not self.matches(f["device_class"], f["utility_enrollment_group"]):
            return  # CCB 1380: silent
        if rules.mask_class_bits:
            f = dict(f, device_class=f["device_class"] & self.device_class)
        crit = f["criticality_level"]
        if crit == 0 or crit > 0x0F:
            return  # reserved criticality: ignored silently
        now = self.host.local_now()
        raw_start = f["start_time"]
        start_now = raw_start == 0
        start = now if start_now else from_utc(raw_start)
        end = start + f["duration_in_minutes"] * 60
        now_s = float(int(now))  # device clocks count whole UTC seconds
        expired = end <= now_s if rules.expired_when_end_equals_now else now_s > end
        if raw_start != UTC_INVALID and expired:
            self._res(None, EventStatus.REJECTED_EXPIRED, tsn, f["issuer_event_id"])
            return
        if f["duration_in_minutes"] > 1440 or raw_start == UTC_INVALID or (
                rules.strict_field_ranges and not _fields_in_range(f)):
            self._res(None, EventStatus.REJECTED, tsn, f["issuer_event_id"])
            return
        if self.find(f["issuer_event_id"]) is not None:
            if rules.duplicate_res:
                self._res(self.find(f["issuer_event_id"]), EventStatus.RECEIVED, tsn)
            return  # SL/NXP: a duplicate from the same ESI is dropped silently
        if start < now and rules.late_start_keeps_duration:
            start = now  # NXP: start moved to now but the duration is not shortened
        ev = LoadControlEvent(f, start, start_now)
        # Overlap and supersede (SE_BEHAVIOUR.md §1.5).
        losers: list[LoadControlEvent] = []
        for old in self.live():
            if not self._overlaps(old, ev):
                continue
            if rules.overlap_winner == ISSUER_ID and old.issuer_event_id > ev.issuer_event_id:
                # An older event never replaces a newer one it overlaps: refused, the newer
                # event stays as it was (DrlcRules: the SE rule).
                self._res(None, EventStatus.REJECTED, tsn, ev.issuer_event_id)
                return
            if rules.overlap_winner == LATER_START:
                if old.state == ACTIVE:
                    losers.append(old)  # NXP checks the running event only at the new start
                    continue
                new_wins = ev.start > old.start or (
                    ev.start == old.start and ev.issuer_event_id > old.issuer_event_id)
                if not new_wins:
                    self._res(None, EventStatus.REJECTED, tsn, ev.issuer_event_id)
                    return
            losers.append(old)
        if len([e for e in self.live() if e not in losers]) >= self.table_size:
            self._res(None, EventStatus.REJECTED, tsn, ev.issuer_event_id)  # table full
            return
        if ev.event_control & 0x01:
            ev.rs = self._draw(self.start_randomization_minutes)
        if ev.event_control & 0x02:
            ev.rd = self._draw(self.duration_randomization_minutes)
        self.events.append(ev)
        self._res(ev, EventStatus.RECEIVED, tsn)
        for old in losers:
            self._supersede(old, ev)
        ev.timer = self.host.at_local(max(ev.effective_start, now), self._start, ev)

    def _overlaps(self, old: LoadControlEvent, new: LoadControlEvent) -> bool:
        if not (old.start < new.end and new.start < old.end):
            return False  # half-open intervals: touching events do not overlap
        dc = bool(old.device_class & new.device_class)
        name = self.rules.name
        if name == "freescale":
            return dc
        if name == "nxp":
            return dc or new.ueg in (old.ueg, 0)
        return dc or old.ueg == 0 or new.ueg in (0, old.ueg)

    def _supersede(self, old: LoadControlEvent, new: LoadControlEvent) -> None:
        rules = self.rules
        if rules.mask_class_bits:
            remaining = old.device_class & ~new.device_class
            if remaining:
                old.device_class = remaining  # only the shared class bits are superseded
                return
        old.superseded_by = new
        if old.timer is not None:
            old.timer.cancel()
            old.timer = None
        now = self.host.local_now()
        if old.state == SCHEDULED:
            when = now + TICK if rules.cancel_on_tick else now
            old.timer = self.host.at_local(when, self._finish_superseded, old)
        elif rules.supersede_running_at_new_start:
            pass  # reported by _start of the new event
        else:
            # SL: let it run, report 0x07 one second before the new event's effective start.
            when = max(now + TICK, new.effective_start - TICK)
            old.timer = self.host.at_local(when, self._finish_superseded, old)

    def _finish_superseded(self, old: LoadControlEvent) -> None:
        if old.state == DONE:
            return
        was_active = old.state == ACTIVE
        old.state = DONE
        old.timer = None
        self._res(old, EventStatus.SUPERSEDED)
        self._remove(old)
        if was_active:
            self.host.apply_event(None)
            self._start_waiting()

    def _start(self, ev: LoadControlEvent) -> None:
        ev.timer = None
        if ev.state != SCHEDULED or ev.superseded_by is not None:
            return
        for old in list(self.events):
            if old.superseded_by is ev and old.state == ACTIVE:
                if old.timer is not None:
                    old.timer.cancel()
                self._finish_superseded(old)
        if self.active() is not None:
            ev.waiting = True  # SL "test 10.38": start only when no other event runs
            return
        now = self.host.local_now()
        if ev.waiting and now > ev.effective_start:
            ev.rs += now - ev.effective_start  # delayed start: the full duration still runs
        ev.waiting = False
        ev.state = ACTIVE
        if ev.opted_in:
            self._res(ev, EventStatus.STARTED)
            self.host.apply_event(ev)
        else:
            self._res(ev, self.rules.opt_out_start_status)
        ev.timer = self.host.at_local(ev.effective_end, self._end, ev)

    def _start_waiting(self) -> None:
        for ev in self.events:
            if ev.waiting and ev.state == SCHEDULED and ev.superseded_by is None:
                self._start(ev)
                return

    def _end(self, ev: LoadControlEvent) -> None:
        ev.timer = None
        if ev.state != ACTIVE:
            return
        ev.state = DONE
        if (self.rules.name == "freescale" and (ev.partial or not ev.opted_in)) or ev.partial:
            status = EventStatus.PARTIALLY_COMPLETED_OPT_IN if ev.opted_in else EventStatus.PARTIALLY_COMPLETED_OPT_OUT
        else:
            status = EventStatus.COMPLETED if ev.opted_in else EventStatus.COMPLETED_NO_PARTICIPATION
        self._res(ev, status)
        self._remove(ev)
        self.host.apply_event(None)
        self._start_waiting()

    def _remove(self, ev: LoadControlEvent) -> None:
        if ev in self.events:
            self.events.remove(ev)

    # ----------------------------------------------------------------- user choice
    def set_opt(self, issuer_event_id: int, opt_in: bool, se_version: str) -> bool:
        """The resident opts out of (or back into) an event. Returns False if refused/unknown."""
        ev = self.find(issuer_event_id)
        if ev is None or ev.superseded_by is not None:
            return False
        if not opt_in and ev.criticality >= 7 and self.refuse_mandatory:
            if se_version == "1.2":
                self._res(ev, EventStatus.REJECTED_INVALID_OPT_OUT)
            return False
        if ev.opted_in == opt_in:
            return True
        ev.opted_in = opt_in
        status = EventStatus.OPTED_IN if opt_in else EventStatus.OPTED_OUT
        if ev.state == ACTIVE:
            ev.partial = True
            self._res(ev, status)
            self.host.apply_event(ev if opt_in else None)
        elif ev.state == SCHEDULED and self.rules.res_opt_before_start:
            self._res(ev, status)  # SL sends at once (the precedence bug SE_BEHAVIOUR.md §1.6)
        return True

    # ----------------------------------------------------------------- cancel
    def on_cancel(self, f: dict[str, Any], tsn: int) -> None:
        rules = self.rules
        iid = f["issuer_event_id"]
        if not self.matches(f["device_class"], f["utility_enrollment_group"]):
            if (rules.fsl_cancel_ueg_mismatch_res and f["device_class"] & self.device_class):
                self._res(None, EventStatus.REJECTED_INVALID_CANCEL, tsn, iid)
            return
        raw_eff = f["effective_time"]
        if rules.cancel_nonzero_effective_refused and raw_eff != 0:
            self.host.send_default_response_drlc(0x01, 0x86, tsn)  # UNSUPPORTED_ATTRIBUTE
            return
        ev = self.find(iid)
        if ev is None or ev.superseded_by is not None:
            self._res(None, rules.cancel_unknown_status, tsn, iid)
            return
        now = self.host.local_now()
        eff = now if raw_eff == 0 else from_utc(raw_eff)
        if rules.name == "nxp":
            late = raw_eff == UTC_INVALID or eff > ev.effective_end
        elif rules.name == "freescale":
            late = raw_eff == UTC_INVALID or ev.end <= eff
        else:
            late = raw_eff == UTC_INVALID or eff > ev.end
        if late:
            self._res(ev, rules.cancel_late_status, tsn)
            return
        self._schedule_cancel(ev, f["cancel_control"], raw_eff, eff, 0)

    def _schedule_cancel(self, ev: LoadControlEvent, control: int, raw_eff: int, eff: float,
                         order: int) -> None:
        rules = self.rules
        now = self.host.local_now()
        rand = (ev.rd or ev.rs) if control & 0x01 else 0.0
        if rules.name == "silabs":
            # CCB 1513; with a non-zero effective time SL computes 0 + rand: in the past.
            when = (now if raw_eff == 0 else 0.0) + rand if control & 0x01 else eff
            when = max(when, now + TICK) + order * TICK
        elif rules.name == "spec":
            # SL's tick, without its bug: the randomization is added to the effective time.
            when = max(eff + rand, now + TICK) + order * TICK
        elif rules.name == "exegin":
            when = now + TICK + order * TICK if ev.state == ACTIVE else now
        else:  # nxp, freescale
            when = eff + (ev.rd if control & 0x01 else 0.0)
        if ev.timer is not None:
            ev.timer.cancel()
        ev.timer = self.host.at_local(max(when, now), self._do_cancel, ev)

    def _do_cancel(self, ev: LoadControlEvent) -> None:
        ev.timer = None
        if ev.state == DONE or ev.superseded_by is not None:
            return
        was_active = ev.state == ACTIVE
        ev.state = DONE
        self._res(ev, EventStatus.CANCELLED)
        self._remove(ev)
        if was_active:
            self.host.apply_event(None)
            self._start_waiting()

    def on_cancel_all(self, f: dict[str, Any], tsn: int, disable_default_response: bool) -> None:
        events = self.live()
        if not events:
            if self.rules.cancel_all_empty_res:
                self._res(None, EventStatus.REJECTED_INVALID_CANCEL, tsn, 0)
            elif not disable_default_response:
                self.host.send_default_response_drlc(0x02, 0x00, tsn)
            return
        control = f["cancel_control"]
        now = self.host.local_now()
        for i, ev in enumerate(sorted(events, key=lambda e: (e.start, e.issuer_event_id))):
            self._schedule_cancel(ev, control, 0, now, i)

    # ----------------------------------------------------------------- inspection
    def snapshot(self) -> list[dict[str, Any]]:
        names = {SCHEDULED: "scheduled", ACTIVE: "active", DONE: "done"}
        return [
            {"issuer_event_id": e.issuer_event_id, "state": names[e.state],
             "opted_in": e.opted_in, "effective_start": e.effective_start,
             "effective_end": e.effective_end, "superseded": e.superseded_by is not None}
            for e in self.events
        ]


def _fields_in_range(f: dict[str, Any]) -> bool:
    """FSL's extra checks (SE_BEHAVIOUR.md §1.2 step 6)."""
    avg = _s8(f.get("average_load_adjustment_percentage", NOT_USED_LOAD))
    if avg != NOT_USED_LOAD and not -100 <= avg <= 100:
        return False
    duty = f.get("duty_cycle", NOT_USED_DUTY)
    if duty != NOT_USED_DUTY and duty > 100:
        return False
    for name in ("cooling_temperature_offset", "heating_temperature_offset"):
        v = f.get(name, NOT_USED_OFFSET)
        if v != NOT_USED_OFFSET and v > 0xFE:
            return False
    cool = _sp(f.get("cooling_temperature_set_point")) == -0x8000
    heat = _sp(f.get("heating_temperature_set_point")) == -0x8000
    return cool == heat  # a pair with only one side "not used" is rejected
