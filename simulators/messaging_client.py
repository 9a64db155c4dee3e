"""Messaging client (SE 0x0703) as Silicon Labs' messaging-client plugin behaves.

See SE_BEHAVIOUR.md §3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.device import (
    INVALID_FIELD,
    INVALID_VALUE,
    MESSAGING,
    NOT_FOUND,
)
from simulators.se_time import from_utc
from zigbee_se import DecodedFrame

if TYPE_CHECKING:
    from simulators.device import SimDevice

UNTIL_CHANGED = 0xFFFF
CONFIRM_REQUIRED = 0x80
ENHANCED_CONFIRM = 0x20


class Message:
    __slots__ = ("active", "confirmed", "control", "end", "message_id", "start", "text", "timer")

    def __init__(self, message_id: int, control: int, start: float, end: float | None, text: str):
        self.message_id = message_id
        self.control = control
        self.start = start
        self.end = end
        self.text = text
        self.active = False
        self.confirmed = False
        self.timer: Any = None


def truncate_utf8(text: str, limit: int) -> str:
    """Cut to at most ``limit`` UTF-8 bytes without splitting a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


class MessagingClient:
    """Holds at most one message (nested/overlapping messages are not allowed)."""

    __slots__ = ("confirmations", "device", "message")

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.message: Message | None = None
        self.confirmations = 0

    @property
    def displayed_text(self) -> str | None:
        m = self.message
        return m.text if m is not None and m.active else None

    def handle(self, frame: DecodedFrame) -> bool:
        cmd = frame.command
        if cmd in ("display_message", "display_protected_message"):
            self._display(frame)
        elif cmd == "cancel_message":
            m = self.message
            if m is not None and m.active and m.message_id == frame.fields["message_id"]:
                self._deactivate()
                self.device._ok(MESSAGING, frame)
            else:
                self.device._error(MESSAGING, frame, NOT_FOUND)
        elif cmd == "cancel_all_messages":
            if self.message is not None:
                self._deactivate()
            self.device._ok(MESSAGING, frame)
        else:
            return False
        return True

    def _display(self, frame: DecodedFrame) -> None:
        dev = self.device
        f = frame.fields
        control = f["message_control"]
        if control & 0x03 == 0x02:
            dev._error(MESSAGING, frame, INVALID_FIELD)  # Inter-PAN only: deprecated
            return
        m = self.message
        if m is not None and m.active and m.message_id == f["message_id"]:
            dev._ok(MESSAGING, frame)  # duplicate: no redisplay
            return
        text = f["message"]
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        limit = dev.profile.quirks.max_text_bytes
        if len(text.encode("utf-8")) > limit:
            if dev.profile.quirks.text_overflow == "reject":
                dev._error(MESSAGING, frame, INVALID_VALUE)
                return
            text = truncate_utf8(text, limit)
        now = dev.local_now()
        start = now if f["start_time"] == 0 else from_utc(f["start_time"])
        duration = f["duration_in_minutes"]
        end = None if duration == UNTIL_CHANGED else start + duration * 60
        if m is not None:
            self._deactivate()
        m = Message(f["message_id"], control, start, end, text)
        self.message = m
        if end is None or end > now:
            m.timer = dev.at_local(max(start, now), self._show, m)
        dev._ok(MESSAGING, frame)

    def _show(self, m: Message) -> None:
        if self.message is not m:
            return
        m.active = True
        dev = self.device
        if m.end is not None:
            m.timer = dev.at_local(m.end, self._expire, m)
        q = dev.profile.quirks
        if m.control & CONFIRM_REQUIRED and not q.never_confirm:
            dev.at_local(dev.local_now() + q.confirm_delay_s, self._resident_confirms, m)

    def _expire(self, m: Message) -> None:
        if self.message is m:
            m.active = False
            m.timer = None

    def _deactivate(self) -> None:
        m = self.message
        if m is not None:
            m.active = False
            if m.timer is not None:
                m.timer.cancel()
                m.timer = None

    def _resident_confirms(self, m: Message) -> None:
        if self.message is m and m.active and not m.confirmed:
            self.confirm()

    def confirm(self, yes: bool = True, response: str = "") -> bool:
        """The resident presses confirm: MessageConfirmation while the message is active."""
        m = self.message
        if m is None or not m.active:
            return False
        m.confirmed = True
        self.confirmations += 1
        fields: dict[str, Any] = {"message_id": m.message_id,
                                  "confirmation_time": self.device.local_utc()}
        if self.device.profile.se_version == "1.2" and m.control & ENHANCED_CONFIRM:
            fields["message_confirmation_control"] = 0x02 if yes else 0x01
            fields["message_response"] = response
        self.device.send(MESSAGING, "message_confirmation", fields)
        return True

    def get_last_message(self) -> None:
        self.device.send(MESSAGING, "get_last_message", {})
