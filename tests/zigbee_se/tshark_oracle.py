"""An independent decoder for our SE frames: Wireshark's ZigBee Smart Energy dissector (tshark).

We wrap each ZCL frame from `encode_frame` in the layers tshark needs to reach the ZCL dissector —
an IEEE 802.15.4 MAC data frame, an unsecured ZigBee NWK data frame and an unsecured APS data frame
(unicast, profile 0x0109, the cluster id) — write them all into ONE pcap (LINKTYPE_IEEE802_15_4_NOFCS)
and run tshark once with `-T pdml`. The PDML tree gives, per Wireshark field, its interpreted value
(`show`), its display text (`showname`), its raw bytes (`value` / `unmaskedvalue`) and its position.

The pcap is written by hand with `struct`: the format is three fixed headers and no library we
already depend on writes 802.15.4 captures (scapy would be a large test dependency for 40 lines).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zigbee_se import SEVersion

LINKTYPE_IEEE802_15_4_NOFCS = 230
MAC_HEADER_SIZE = 9  # frame control, sequence, dst PAN, dst short, src short (PAN id compressed)
NWK_HEADER_SIZE = 8  # frame control, dst, src, radius, sequence
APS_HEADER_SIZE = 8  # frame control, dst endpoint, cluster, profile, src endpoint, counter
ZCL_OFFSET = MAC_HEADER_SIZE + NWK_HEADER_SIZE + APS_HEADER_SIZE

SE_PROFILE = 0x0109
ESI_SHORT, DEVICE_SHORT, PAN_ID = 0x0000, 0x1A2B, 0x1234
ESI_ENDPOINT, DEVICE_ENDPOINT = 0x01, 0x09

# tshark's expert severities (epan/proto.h PI_*): only these two fail a comparison.
SEVERITY_WARNING = 0x00600000
SEVERITY_ERROR = 0x00800000

ZIGBEE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class TsharkMissing(RuntimeError):
    """tshark is not installed: the differential tests cannot run (and must not pass silently)."""


def tshark_path() -> str:
    found = shutil.which("tshark")
    if found is None:
        raise TsharkMissing(
            "tshark (Wireshark's command-line dissector) is required for the differential SE codec "
            "tests but is not on PATH. Install it with `apt-get install -y tshark` "
            "(scripts/test does this on a fresh Debian machine)."
        )
    return found


def tshark_version() -> str:
    out = subprocess.run([tshark_path(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def tshark_release() -> str:
    """Just the release, e.g. "4.0.17"."""
    match = re.search(r"\d+\.\d+\.\d+", tshark_version())
    return match.group(0) if match else tshark_version()


# ----------------------------------------------------------------------------- building the capture


def wrap_zcl(cluster: int, zcl: bytes, seq: int, *, server_to_client: bool) -> bytes:
    """MAC + NWK + APS headers (all unsecured, unicast) around one ZCL frame."""
    src, dst = (ESI_SHORT, DEVICE_SHORT) if server_to_client else (DEVICE_SHORT, ESI_SHORT)
    src_ep, dst_ep = (ESI_ENDPOINT, DEVICE_ENDPOINT) if server_to_client else (DEVICE_ENDPOINT, ESI_ENDPOINT)
    # MAC frame control 0x8841: data frame, PAN id compression, short dst and src addresses.
    mac = struct.pack("<HBHHH", 0x8841, seq & 0xFF, PAN_ID, dst, src)
    # NWK frame control 0x0008: data frame, protocol version 2, no security, no source route.
    nwk = struct.pack("<HHHBB", 0x0008, dst, src, 30, seq & 0xFF)
    # APS frame control 0x00: data frame, unicast delivery, no security, no ack request.
    aps = struct.pack("<BBHHBB", 0x00, dst_ep, cluster, SE_PROFILE, src_ep, seq & 0xFF)
    return mac + nwk + aps + zcl


def build_pcap(packets: Sequence[bytes]) -> bytes:
    """A classic libpcap file (microsecond timestamps) of 802.15.4 frames without FCS."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0xFFFF, LINKTYPE_IEEE802_15_4_NOFCS))
    for i, packet in enumerate(packets):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(packet), len(packet))
        out += packet
    return bytes(out)


# ----------------------------------------------------------------------------- reading tshark's tree


@dataclass
class WsField:
    name: str
    show: str | None
    showname: str | None
    value: str | None
    unmasked: str | None
    pos: int
    """Offset in the ZCL frame (negative for the layers below it)."""
    size: int
    children: list[WsField] = field(default_factory=list)

    @property
    def is_bitfield(self) -> bool:
        return self.unmasked is not None

    @property
    def raw(self) -> bytes:
        """The field's bytes on the wire (for a bit field: the whole bytes it sits in)."""
        text = self.unmasked if self.unmasked is not None else self.value
        return bytes.fromhex(text or "")

    def walk(self) -> Iterator[WsField]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class WsExpert:
    severity: int
    message: str


@dataclass
class WsPacket:
    zcl: list[WsField]
    """The top-level fields of the ZCL protocol tree."""
    experts: list[WsExpert]
    malformed: bool
    protocols: list[str]

    def walk(self) -> Iterator[WsField]:
        for top in self.zcl:
            yield from top.walk()

    def all(self, name: str) -> list[WsField]:
        return [f for f in self.walk() if f.name == name]

    def first(self, name: str, *, bitfield: bool | None = None) -> WsField | None:
        for f in self.walk():
            if f.name == name and (bitfield is None or f.is_bitfield == bitfield):
                return f
        return None

    @property
    def problems(self) -> list[WsExpert]:
        return [e for e in self.experts if e.severity >= SEVERITY_WARNING]


def _field(elem: ET.Element) -> WsField:
    return WsField(
        name=elem.get("name", ""),
        show=elem.get("show"),
        showname=elem.get("showname"),
        value=elem.get("value"),
        unmasked=elem.get("unmaskedvalue"),
        pos=int(elem.get("pos", "0")) - ZCL_OFFSET,
        size=int(elem.get("size", "0")),
        children=[_field(c) for c in elem.findall("field")],
    )


def _experts(packet: ET.Element) -> list[WsExpert]:
    found = []
    for elem in packet.iter("field"):
        if elem.get("name") != "_ws.expert":
            continue
        severity = message = None
        for child in elem.iter("field"):
            if child.get("name") == "_ws.expert.severity":
                severity = int(child.get("show", "0"))
            elif child.get("name") == "_ws.expert.message":
                message = child.get("show")
        found.append(WsExpert(severity or 0, message or elem.get("showname") or ""))
    return found


def parse_pdml(pdml: bytes) -> list[WsPacket]:
    packets = []
    for packet in ET.fromstring(pdml).findall("packet"):
        protos = packet.findall("proto")
        zcl = next((p for p in protos if p.get("name") == "zbee_zcl"), None)
        packets.append(
            WsPacket(
                zcl=[_field(f) for f in zcl.findall("field")] if zcl is not None else [],
                experts=_experts(packet),
                malformed=any(p.get("name") == "_ws.malformed" for p in protos),
                protocols=[p.get("name", "") for p in protos],
            )
        )
    return packets


def dissect(frames: Sequence[tuple[int, bytes, bool]]) -> list[WsPacket]:
    """Run tshark ONCE over (cluster id, ZCL frame, server_to_client) frames; one WsPacket each."""
    packets = [wrap_zcl(c, zcl, i, server_to_client=s2c) for i, (c, zcl, s2c) in enumerate(frames)]
    with tempfile.TemporaryDirectory(prefix="se-oracle-") as tmp:
        capture = Path(tmp) / "se_frames.pcap"
        capture.write_bytes(build_pcap(packets))
        done = subprocess.run(
            [tshark_path(), "-n", "-r", str(capture), "-T", "pdml"],
            capture_output=True,
            timeout=90,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"tshark failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    parsed = parse_pdml(done.stdout)
    if len(parsed) != len(frames):
        raise RuntimeError(f"tshark returned {len(parsed)} packets for {len(frames)} frames")
    return parsed


# ----------------------------------------------------------------------------- interpreting `show`

_TIME_RE = re.compile(r"^([A-Z][a-z]{2}) +(\d+), (\d{4}) (\d\d):(\d\d):(\d\d)(?:\.\d+)? UTC$")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}


def show_int(f: WsField) -> int:
    """An integer field's interpreted value ('0x1f', '31', '-5')."""
    if f.show is None:
        raise ValueError(f"{f.name} has no value")
    return int(f.show, 0)


def show_utc(f: WsField) -> int:
    """An FT_ABSOLUTE_TIME field ('Jun  1, 2024 12:00:00.000000000 UTC') as ZigBee UTCTime seconds."""
    match = _TIME_RE.match(f.show or "")
    if match is None:
        raise ValueError(f"{f.name}: {f.show!r} is not an absolute time")
    mon, day, year, hh, mm, ss = match.groups()
    when = datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    return int((when - ZIGBEE_EPOCH).total_seconds())


def show_bytes(f: WsField) -> bytes:
    """An FT_BYTES field ('00:01:02')."""
    return bytes.fromhex((f.show or "").replace(":", ""))


def raw_le(f: WsField, *, signed: bool = False) -> int:
    return int.from_bytes(f.raw, "little", signed=signed)


# ----------------------------------------------------------------------------- our names <-> Wireshark's

P, D, MSG = "zbee_zcl_se.price.", "zbee_zcl_se.drlc.", "zbee_zcl_se.msg."


@dataclass(frozen=True)
class Map:
    """One Wireshark field compared with one of our fields (or a value computed from them)."""

    ws: str
    ours: str
    kind: str = "int"
    """int: `show` as an integer; utc: `show` as an absolute time; text: `show` as text;
    bytes: `show` as colon hex; nibble_byte: the whole byte of two nibble fields (ours = 'hi+lo')."""
    bitfield: bool = False
    """True if Wireshark shows this field as a masked bit field (take that occurrence)."""


def _m(prefix: str, pairs: str, kind: str = "int") -> list[Map]:
    out = []
    for pair in pairs.split():
        ws, _, ours = pair.partition("=")
        out.append(Map(prefix + ws, ours or ws, kind))
    return out


def _display_message_map() -> list[Map]:
    return [
        *_m(MSG, "message.id=message_id message.ctrl=message_control message.start_time=start_time "
                 "message.duration=duration_in_minutes"),
        Map(MSG + "message", "message", "text"),
        Map(MSG + "message.ext.ctrl", "extended_message_control"),
    ]


FIELD_MAP: dict[str, list[Map]] = {
    "publish_price": [
        *_m(P, "provider_id"),
        Map(P + "rate_label", "rate_label", "text"),
        *_m(P, "issuer_event_id"),
        *_m(P, "current_time", "utc"),
        *_m(P, "unit_of_measure currency"),
        Map(P + "trailing_digit_and_price_tier", "price_trailing_digit+price_tier", "nibble_byte"),
        Map(P + "trailing_digit", "price_trailing_digit", bitfield=True),
        Map(P + "tier", "price_tier", bitfield=True),
        Map(P + "number_of_price_tiers_and_register_tier", "number_of_price_tiers+register_tier",
            "nibble_byte"),
        Map(P + "number_of_price_tiers", "number_of_price_tiers", bitfield=True),
        Map(P + "register_tier", "register_tier", bitfield=True),
        *_m(P, "start_time", "utc"),
        *_m(P, "duration_in_minutes price price.ratio=price_ratio generation_price "
               "generation_price.ratio=generation_price_ratio alternate_cost_delivered "
               "alternate_cost.unit=alternate_cost_unit "
               "alternate_cost.trailing_digit=alternate_cost_trailing_digit "
               "number_of_block_thresholds control=price_control number_of_generation_tiers "
               "generation_tier extended_number_of_price_tiers extended_price_tier "
               "extended_register_tier"),
    ],
    "publish_block_period": [
        *_m(P, "provider_id issuer_event_id"),
        *_m(P, "block_period.start_time=block_period_start_time", "utc"),
        *_m(P, "block_period.duration=block_period_duration "
               "block_period.control=block_period_control "
               "block_period.duration.type=block_period_duration_type "
               "tariff_type_mask=tariff_type tariff.resolution_period=tariff_resolution_period"),
        # the SE 1.1 layout's nibble pair, which Wireshark does not know (KNOWN_MISTAKES)
        Map(P + "number_of_price_tiers_and_number_of_block_thresholds",
            "number_of_price_tiers+number_of_block_thresholds", "nibble_byte"),
    ],
    "get_current_price": _m(P, "command_options"),
    "get_scheduled_prices": [*_m(P, "start_time", "utc"), *_m(P, "number_of_events")],
    "price_acknowledgement": [
        *_m(P, "provider_id issuer_event_id"),
        *_m(P, "price_ack_time", "utc"),
        *_m(P, "control"),
    ],
    "get_block_periods": [
        *_m(P, "start_time", "utc"),
        *_m(P, "number_of_events"),
        Map(P + "tariff_type", "tariff_type", bitfield=True),
    ],
    "load_control_event": _m(
        D,
        "issuer_id=issuer_event_id device_class utility_enrollment_group start_time "
        "duration_in_minutes criticality_level cooling_temperature_offset heating_temperature_offset "
        "cooling_temperature_set_point heating_temperature_set_point "
        "average_load_adjustment_percentage duty_cycle event_control",
    ),
    "cancel_load_control_event": [
        *_m(D, "issuer_id=issuer_event_id device_class utility_enrollment_group cancel_control"),
        Map(D + "effective_time", "effective_time", bitfield=True),
    ],
    "cancel_all_load_control_events": _m(D, "cancel_control"),
    "report_event_status": [
        *_m(D + "report_event.", "issuer_id=issuer_event_id event_status"),
        *_m(D + "report_event.", "event_status_time", "utc"),
        *_m(D + "report_event.",
            "criticality_level_applied cooling_temperature_set_point_applied "
            "heating_temperature_set_point_applied average_load_adjustment_percentage_applied "
            "duty_cycle_applied event_control signature_type"),
        Map(D + "report_event.signature", "signature", "bytes"),
    ],
    "get_scheduled_events": [
        *_m(D + "get_scheduled_events.", "start_time", "utc"),
        *_m(D + "get_scheduled_events.", "numbers_of_events=number_of_events issuer_event_id"),
    ],
    "display_message": _display_message_map(),
    "display_protected_message": _display_message_map(),
    "cancel_message": _m(MSG, "message.id=message_id message.ctrl=message_control"),
    "cancel_all_messages": _m(MSG, "impl_time=implementation_date_time", "utc"),
    "get_last_message": [],
    "message_confirmation": [
        *_m(MSG, "message.id=message_id"),
        *_m(MSG, "message.confirm_time=confirmation_time", "utc"),
        Map(MSG + "message.confirm.ctrl", "message_confirmation_control", bitfield=True),
        Map(MSG + "message", "message_response", "text"),
    ],
    "get_message_cancellation": _m(MSG, "earliest_impl_time=earliest_implementation_time", "utc"),
}

COMMAND_LABELS = {
    "publish_price": "Publish Price",
    "publish_block_period": "Publish Block Period",
    "get_current_price": "Get Current Price",
    "get_scheduled_prices": "Get Scheduled Prices",
    "price_acknowledgement": "Price Acknowledgement",
    "get_block_periods": "Get Block Period(s)",
    "load_control_event": "Load Control Event",
    "cancel_load_control_event": "Cancel Load Control Event",
    "cancel_all_load_control_events": "Cancel All Load Control Events",
    "report_event_status": "Report Event Status",
    "get_scheduled_events": "Get Scheduled Events",
    "display_message": "Display Message",
    "cancel_message": "Cancel Message",
    "display_protected_message": "Display Protected Message",
    "cancel_all_messages": "Cancel All Messages",
    "get_last_message": "Get Last Message",
    "message_confirmation": "Message Confirmation",
    "get_message_cancellation": "Get Message Cancellation",
    "read_attributes": "Read Attributes",
    "read_attributes_response": "Read Attributes Response",
    "report_attributes": "Report Attributes",
    "default_response": "Default Response",
}
CLUSTER_PREFIX = {0x0700: "zbee_zcl_se.price", 0x0701: "zbee_zcl_se.drlc", 0x0703: "zbee_zcl_se.msg"}


# ----------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class KnownMistake:
    """A documented place where Wireshark 4.0.x decodes or labels a correct frame wrongly.

    Where it applies, the field is compared as `compare` says instead of by its interpreted value,
    and `still_shown` must hold: Wireshark must still make exactly this mistake, so that the
    exception cannot hide a real difference (and is noticed when a newer Wireshark fixes it)."""

    id: str
    reason: str
    commands: frozenset[str]
    fields: frozenset[str]
    """Our field names (as in FIELD_MAP's `ours`) the mistake concerns."""
    applies: Callable[[Any, Mapping[str, Any], SEVersion], bool]
    """(our value of the field, all our fields, SE version) -> does the mistake show here?"""
    compare: str
    """"show": the interpreted value is still right (only the label is wrong); "raw": compare the
    field's wire bytes instead; "none": Wireshark reads another layout here, nothing to compare."""
    still_shown: Callable[[WsField | None, WsPacket, Any], bool]
    """(Wireshark's field or None, the packet, our value) -> True if the known mistake is visible."""
    expert: str | None = None
    """Substring of the expert message (warning/error) this mistake explains, if any."""


@dataclass
class Verdict:
    mismatches: list[str] = field(default_factory=list)
    mistakes_confirmed: set[str] = field(default_factory=set)
    compared: set[str] = field(default_factory=set)
    """Our field names whose value was checked against tshark's."""

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _our_value(fields: Mapping[str, Any], ours: str) -> Any:
    if "+" in ours:
        hi, lo = ours.split("+")
        if hi not in fields or lo not in fields:
            return _ABSENT
        return (fields[hi] << 4) | fields[lo]
    return fields.get(ours, _ABSENT)


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def _interpreted(f: WsField, kind: str) -> Any:
    if kind == "utc":
        return show_utc(f)
    if kind == "text":
        return f.show
    if kind == "bytes":
        return show_bytes(f)
    return show_int(f)


def _wire(value: Any, f: WsField, kind: str) -> bytes:
    """Our value as the bytes Wireshark's field should cover."""
    if kind == "text":
        data = value.encode("utf-8")
        return bytes((len(data),)) + data
    if kind == "bytes":
        return bytes(value)
    return int(value).to_bytes(f.size, "little", signed=value < 0)


def _describe(f: WsField) -> str:
    return f"{f.name} show={f.show!r} raw={f.raw.hex()} at ZCL offset {f.pos} ({f.showname!r})"


def compare_frame(
    cluster: int,
    command: str,
    se_version: SEVersion,
    frame: bytes,
    packet: WsPacket,
    *,
    mistakes: Sequence[KnownMistake],
) -> Verdict:
    """Does Wireshark decode `frame` (our encoding of `command`) to the same command and values?"""
    from zigbee_se import decode_frame

    verdict = Verdict()
    bad = verdict.mismatches.append
    decoded = decode_frame(cluster, frame, se_version=se_version)
    if decoded.command != command:
        bad(f"our own decoder reads {decoded.command}, not {command}")
        return verdict
    if "zbee_zcl" not in packet.protocols:
        bad(f"tshark did not reach the ZCL dissector (protocols: {packet.protocols})")
        return verdict
    hdr = 3 if decoded.manufacturer_code is None else 5

    # --- header and command
    for ws, ours in (
        ("zbee_zcl.type", int(decoded.frame_type)),
        ("zbee_zcl.dir", int(decoded.direction)),
        ("zbee_zcl.ddr", int(decoded.disable_default_response)),
        ("zbee_zcl.cmd.tsn", decoded.tsn),
    ):
        f = packet.first(ws)
        if f is None or show_int(f) != ours:
            bad(f"header {ws}: tshark {None if f is None else f.show!r}, ours {ours}")
    mc = packet.first("zbee_zcl.cmd.mc")
    if (None if mc is None else show_int(mc)) != decoded.manufacturer_code:
        bad(f"manufacturer code: tshark {mc}, ours {decoded.manufacturer_code}")
    if decoded.frame_type == 0:
        id_field = "zbee_zcl.cmd.id"
    else:
        side = "tx" if decoded.direction else "rx"
        id_field = f"{CLUSTER_PREFIX[cluster]}.cmd.srv_{side}.id"
    f = packet.first(id_field)
    label = COMMAND_LABELS[command]
    if f is None or show_int(f) != decoded.command_id or not (f.showname or "").startswith(
        f"Command: {label} ("
    ):
        bad(f"command: tshark {None if f is None else _describe(f)}, ours {label} "
            f"0x{decoded.command_id:02x} via {id_field}")

    # --- which known mistakes apply here
    active: dict[str, KnownMistake] = {}
    for mistake in mistakes:
        if command not in mistake.commands:
            continue
        for name in mistake.fields:
            value = _our_value(decoded.fields, name)
            if value is _ABSENT and mistake.compare == "none":
                value = None  # a field of the other layout, which Wireshark reads instead
            if value is not _ABSENT and mistake.applies(value, decoded.fields, se_version):
                active[name] = mistake

    # --- payload fields
    if decoded.frame_type == 0:
        _compare_global(command, decoded.fields, packet, hdr, bad)
    else:
        mapped = {m.ws for m in FIELD_MAP[command]}
        for m in FIELD_MAP[command]:
            ours = _our_value(decoded.fields, m.ours)
            f = packet.first(m.ws, bitfield=m.bitfield)
            mistake = active.get(m.ours)
            if mistake is not None:
                if not mistake.still_shown(f, packet, ours):
                    bad(f"known mistake {mistake.id} no longer shown for {m.ours}={ours!r}: "
                        f"{None if f is None else _describe(f)}; re-check it and the exception")
                else:
                    verdict.mistakes_confirmed.add(mistake.id)
                if mistake.compare == "none":
                    continue
            if ours is _ABSENT and (f is None or f.size == 0):
                continue  # absent on both sides (tshark may add an empty '<MISSING>' item)
            if ours is _ABSENT:
                bad(f"tshark decodes {_describe(f)} where our frame has no such field")  # type: ignore[arg-type]
                continue
            if f is None:
                bad(f"{m.ours}={ours!r}: tshark shows no {m.ws}")
                continue
            verdict.compared.update(m.ours.split("+"))
            if m.kind == "text" and ours is None:
                # ZCL's invalid string (length 0xff): Wireshark reads it as empty
                if f.raw != b"\xff" or f.show != "":
                    bad(f"{m.ours}=<invalid string>: tshark {_describe(f)}")
                continue
            if mistake is not None and mistake.compare == "raw":
                if f.raw != _wire(ours, f, m.kind):
                    bad(f"{m.ours}={ours!r}: raw bytes differ: {_describe(f)}")
                continue
            try:
                theirs = _interpreted(f, m.kind)
            except ValueError as exc:
                bad(f"{m.ours}={ours!r}: cannot read tshark's value: {exc}")
                continue
            if theirs != ours:
                bad(f"{m.ours}: ours {ours!r}, tshark {theirs!r} ({_describe(f)})")
            elif m.kind == "text" and f.raw != _wire(ours, f, m.kind):
                bad(f"{m.ours}={ours!r}: raw bytes differ: {_describe(f)}")
        skipped = {part for n, m in active.items() if m.compare == "none" for part in n.split("+")}
        for name in decoded.fields:
            if name not in verdict.compared and name not in skipped:
                bad(f"{name} is not compared with tshark (FIELD_MAP lacks it)")
        prefix = CLUSTER_PREFIX[cluster] + "."
        for f in packet.walk():
            if f.pos >= hdr and f.name.startswith(prefix) and not f.is_bitfield and f.name not in mapped:
                bad(f"tshark decodes a field we do not compare: {_describe(f)}")

    # --- tshark decoded every byte of the payload, and nothing beyond it
    covered = bytearray(len(frame))
    for f in packet.walk():
        decodes_payload = f.name.startswith(("zbee_zcl_se.", "zbee_zcl.attr.", "zbee_zcl_general."))
        if decodes_payload or f.name == "zbee_zcl.cmd.id.rsp":
            if f.pos < hdr or f.pos + f.size > len(frame):
                if f.pos >= hdr:
                    bad(f"tshark reads past the end of the frame: {_describe(f)}")
                continue
            covered[f.pos : f.pos + f.size] = b"\x01" * f.size
    gaps = [i for i in range(hdr, len(frame)) if not covered[i]]
    if gaps and not any(m.compare == "none" for m in active.values()):
        bad(f"tshark leaves payload bytes undecoded at ZCL offsets {gaps[0]}..{gaps[-1]}: "
            f"{frame[gaps[0] : gaps[-1] + 1].hex()}")

    # --- no malformed packet, no expert warning or error, unless a known mistake explains it
    explained = [m.expert for m in active.values() if m.expert]
    for expert in packet.problems:
        if not any(e in expert.message for e in explained):
            bad(f"tshark expert info (severity 0x{expert.severity:x}): {expert.message}")
    if packet.malformed and not any("Malformed" in e for e in explained):
        bad("tshark marks the packet Malformed")
    return verdict


# zbee_zcl_se.met.attr_id, zbee_zcl_se.drlc.attr_client_id, and the generic one (unknown clusters,
# manufacturer-specific attributes)
ATTRIBUTE_ID_FIELDS = ("attr_id", "attr_client_id", "zbee_zcl.attr.id")

# Where Wireshark's attribute label and our snake_case name differ only in wording (ours follow
# zigpy / the SE specification; both name the same attribute).
ATTRIBUTE_NAME_ALIASES = {
    "daylight_saving_time_start": "dst_start",
    "daylight_saving_time_end": "dst_end",
    "daylight_saving_time_shift": "dst_shift",
    "current_tier_1_summation_delivered": "current_tier1_summ_delivered",  # zigpy's name
}


def ws_attribute_name(attr: WsField) -> str:
    """'Attribute: Unit of Measure (0x0300)' -> 'unit_of_measure'."""
    label = (attr.showname or "").removeprefix("Attribute: ")
    label = re.sub(r" \(0x[0-9a-fA-F]+\)$", "", label)
    name = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return ATTRIBUTE_NAME_ALIASES.get(name, name)


def _record_value(value_field: WsField, data_type: int) -> Any:
    if data_type == 0xE2:
        return show_utc(value_field)
    if data_type in (0x42, 0x44):
        return value_field.show
    if data_type in (0x41, 0x43, 0xF0, 0xF1):
        return show_bytes(value_field)
    return show_int(value_field)


def _compare_global(
    command: str, fields: Mapping[str, Any], packet: WsPacket, hdr: int, bad: Callable[[str], None]
) -> None:
    if command == "read_attributes":
        ids = [show_int(f) for f in packet.walk()
               if f.name.endswith(ATTRIBUTE_ID_FIELDS) and f.pos >= hdr]
        if ids != fields["attribute_ids"]:
            bad(f"attribute_ids: ours {fields['attribute_ids']}, tshark {ids}")
        return
    if command == "default_response":
        for ws, ours in (("zbee_zcl.cmd.id.rsp", "command_id"), ("zbee_zcl.attr.status", "status")):
            f = packet.first(ws)
            if f is None or show_int(f) != fields[ours]:
                bad(f"{ours}: ours {fields[ours]}, tshark {None if f is None else _describe(f)}")
        return
    containers = [f for f in packet.zcl if f.name == "" and f.pos >= hdr]
    records = fields["records"]
    if len(containers) != len(records):
        bad(f"records: ours {len(records)}, tshark {len(containers)}")
        return
    for i, (record, box) in enumerate(zip(records, containers, strict=True)):
        kids = {c.name: c for c in box.children}
        attr = next((c for c in box.children if c.name.endswith(ATTRIBUTE_ID_FIELDS)), None)
        if attr is None or show_int(attr) != record["attribute_id"]:
            bad(f"records[{i}].attribute_id: ours {record['attribute_id']}, tshark {attr}")
        elif "name" in record and ws_attribute_name(attr) != record["name"]:
            bad(f"records[{i}]: attribute 0x{record['attribute_id']:04x} is {record['name']!r} "
                f"to us, {attr.showname!r} to tshark")
        if "status" in record:
            status = kids.get("zbee_zcl.attr.status")
            if status is None or show_int(status) != record["status"]:
                bad(f"records[{i}].status: ours {record['status']}, tshark {status}")
        if "data_type" not in record:
            if "zbee_zcl.attr.data.type" in kids:
                bad(f"records[{i}]: tshark shows a data type for a failed read")
            continue
        dtype = kids.get("zbee_zcl.attr.data.type")
        if dtype is None or show_int(dtype) != record["data_type"]:
            bad(f"records[{i}].data_type: ours 0x{record['data_type']:02x}, tshark {dtype}")
            continue
        value_field = next(
            (c for c in box.children if c.pos == dtype.pos + 1 and not c.is_bitfield and c.name), None
        )
        if value_field is None:
            bad(f"records[{i}].value={record['value']!r}: tshark shows no value")
            continue
        theirs = _record_value(value_field, record["data_type"])
        if theirs != record["value"]:
            bad(f"records[{i}].value: ours {record['value']!r}, tshark {theirs!r} "
                f"({_describe(value_field)})")
