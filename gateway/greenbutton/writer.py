"""A streaming Green Button (NAESB REQ.21 ESPI) writer: usage rows in, Atom feed bytes out.

`espi_feed` consumes rows lazily, in (esi_id, channel, interval start) order, and yields bytes
chunks of about `chunk_bytes`: one UsagePoint entry per ESI ID, a MeterReading and its ReadingType
per channel (consumption: flowDirection 1; generation: flowDirection 19, only where the premise has
generation rows), and an IntervalBlock per local day (America/Chicago midnight to midnight: 92
intervals on the spring-forward day, 100 on the fall-back day). At most one local day of one
channel (<= 100 readings) is held at a time, so a month of 10,000 premises never sits in memory.

Per interval the cost is one `%` format of a constant template (no ElementTree per reading): the
writer must keep up with a bulk export of tens of millions of intervals (benchmarks/espi.py).

Element orders, codes and link types follow ENERGY_DATA.md §2 (the ESPI 4.0 sequences); the own
subset schema gateway/greenbutton/schema/ checks them strictly in the tests.

Quality (our store -> ESPI QualityOfReading), chosen once and documented in docs/green-button.md:
- `actual`    -> no ReadingQuality element; the ReadingType's defaultQuality is 0 (valid);
- `estimated` -> ReadingQuality 8 (estimated using a reference day: the head-end's fill of a gap);
- `missing`   -> no IntervalReading: ESPI has no "missing" code, and a value would be made up.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple, Protocol
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

ATOM_NS = "http://www.w3.org/2005/Atom"
ESPI_NS = "http://naesb.org/espi"
LOCAL_ZONE = ZoneInfo("America/Chicago")  # Texas premises: the day blocks are cut at Central midnight
INTERVAL_S = 900
CONTENT_TYPE = "application/atom+xml"

# Texas in the ESPI DstRuleType bitmaps (ENERGY_DATA.md §2.5): the US rules, second Sunday of March
# and first Sunday of November at 02:00, one hour; standard time 6 hours behind UTC.
TZ_OFFSET_S = -21_600
DST_OFFSET_S = 3_600
DST_START_RULE = "360E2000"
DST_END_RULE = "B40E2000"
LOCAL_TIME_ID = "1"


class EspiChannel(NamedTuple):
    meter_reading_id: str
    reading_type_id: str
    flow_direction: int
    title: str


# ReadingType and MeterReading ids by channel (the store's channel names).
CHANNELS: dict[str, EspiChannel] = {
    "consumption": EspiChannel("1", "1", 1, "Energy delivered (15-minute Wh)"),
    "generation": EspiChannel("2", "2", 19, "Energy received from the premise (15-minute Wh)"),
}
QUALITY_CODES = {"actual": None, "estimated": 8}  # `missing`: the reading is left out
ESTIMATED_CODE = 8


class UsageRow(Protocol):
    """One stored 15-minute interval (gateway.store.usage.StoredRead has these fields)."""

    @property
    def esi_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def interval_start(self) -> datetime: ...
    @property
    def length_s(self) -> int: ...
    @property
    def value_wh(self) -> int: ...
    @property
    def quality(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...


class RowOrderError(ValueError):
    """The rows were not in (esi_id, channel, interval start) order, or named an unknown channel or
    quality: the feed would be wrong, so the writer stops rather than emit it."""


@dataclass(frozen=True)
class FeedLinks:
    """Where the feed's resources live.

    `resource_base`: `{public_url}/espi/1_1/resource` (ReadingType and LocalTimeParameters hang off
    it); `usage_points`: the collection the UsagePoints belong to — `…/Subscription/{id}/UsagePoint`
    (Connect My Data) or `…/RetailCustomer/{id}/UsagePoint` (Download My Data); `self_href`: the
    feed's own URL; `title`: the feed's title."""

    resource_base: str
    usage_points: str
    self_href: str
    title: str


# Cached: a feed asks for the same few times (days, the times reads were stored) thousands of times.
@functools.lru_cache(maxsize=4096)
def atom_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def entry_id(self_href: str) -> str:
    """A stable entry id: the same resource has the same id in every feed that shows it — the
    name-based UUID (version 5) of its URL, `uuid.uuid5(uuid.NAMESPACE_URL, self_href)`, made
    here without a UUID object (a report has one per premise's day: the object was a fifth of the
    Green Button writer's time)."""
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + self_href.encode()).digest()[:16])  # RFC 4122 names SHA-1
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _link(rel: str, href: str, kind: str) -> str:
    return f"<link rel=\"{rel}\" href={quoteattr(href)} type=\"{kind}\"/>"


def _entry(self_href: str, up_href: str, related: Sequence[tuple[str, str]], kind: str,  # noqa: PLR0917
           title: str, content: str, published: str, updated: str) -> str:
    # Atom child order: id, links (self, up, related…), title, content, published, updated — the
    # order the subset schema fixes.
    links = _link("self", self_href, f"espi-entry/{kind}") + _link("up", up_href, f"espi-feed/{kind}") + "".join(
        _link("related", href, rtype) for href, rtype in related)
    return (f"<entry><id>{entry_id(self_href)}</id>{links}<title>{escape(title)}</title>"
            f"<content type=\"xml\">{content}</content><published>{published}</published>"
            f"<updated>{updated}</updated></entry>\n")


def local_time_parameters_content() -> str:
    return (f"<LocalTimeParameters xmlns=\"{ESPI_NS}\"><dstEndRule>{DST_END_RULE}</dstEndRule>"
            f"<dstOffset>{DST_OFFSET_S}</dstOffset><dstStartRule>{DST_START_RULE}</dstStartRule>"
            f"<tzOffset>{TZ_OFFSET_S}</tzOffset></LocalTimeParameters>")


def reading_type_content(channel: EspiChannel) -> str:
    # ENERGY_DATA.md §2.4: delta data (4), electricity (1), normal (12), 900 s, energy (12), Wh (72)
    # at 10^0; defaultQuality 0 (valid) is what a reading without a ReadingQuality is.
    return (f"<ReadingType xmlns=\"{ESPI_NS}\"><accumulationBehaviour>4</accumulationBehaviour>"
            f"<commodity>1</commodity><dataQualifier>12</dataQualifier><defaultQuality>0</defaultQuality>"
            f"<flowDirection>{channel.flow_direction}</flowDirection><intervalLength>{INTERVAL_S}</intervalLength>"
            f"<kind>12</kind><powerOfTenMultiplier>0</powerOfTenMultiplier><timeAttribute>0</timeAttribute>"
            f"<uom>72</uom></ReadingType>")


USAGE_POINT_CONTENT = (f"<UsagePoint xmlns=\"{ESPI_NS}\"><ServiceCategory><kind>0</kind></ServiceCategory>"
                       f"<status>1</status></UsagePoint>")
METER_READING_CONTENT = f"<MeterReading xmlns=\"{ESPI_NS}\"/>"

# One reading: duration, start (Unix seconds), value (Wh).
_READING = ("<IntervalReading><timePeriod><duration>%d</duration><start>%d</start></timePeriod>"
            "<value>%d</value></IntervalReading>")
_READING_ESTIMATED = ("<IntervalReading><ReadingQuality><quality>8</quality></ReadingQuality><timePeriod>"
                      "<duration>%d</duration><start>%d</start></timePeriod><value>%d</value></IntervalReading>")


class Paths:
    """The hrefs of one feed's resources (kept as strings: built once per premise or channel)."""

    def __init__(self, links: FeedLinks) -> None:
        self.links = links
        self.local_time = f"{links.resource_base}/LocalTimeParameters/{LOCAL_TIME_ID}"

    def usage_point(self, esi_id: str) -> str:
        return f"{self.links.usage_points}/{esi_id}"

    def meter_reading(self, esi_id: str, channel: EspiChannel) -> str:
        return f"{self.usage_point(esi_id)}/MeterReading/{channel.meter_reading_id}"

    def reading_type(self, channel: EspiChannel) -> str:
        return f"{self.links.resource_base}/ReadingType/{channel.reading_type_id}"


@functools.lru_cache(maxsize=4096)
def block_id(day: date) -> str:
    return f"{day:%Y%m%d}"


def parse_block_id(text: str) -> date | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def local_day_bounds(day: date) -> tuple[int, int]:
    """[start, end) of a local day in Unix seconds (82,800 / 86,400 / 90,000 s long)."""
    nxt = day + timedelta(days=1)
    return (int(datetime(day.year, day.month, day.day, tzinfo=LOCAL_ZONE).timestamp()),
            int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=LOCAL_ZONE).timestamp()))


def local_day_of(unix: int) -> date:
    return datetime.fromtimestamp(unix, LOCAL_ZONE).date()


# -- entries a feed, or a resource-level GET, is made of ------------------------------------------

def local_time_entry(paths: Paths, stamp: str) -> str:
    return _entry(paths.local_time, f"{paths.links.resource_base}/LocalTimeParameters", (), "LocalTimeParameters",
                  "Local time: US Central (America/Chicago)", local_time_parameters_content(), stamp, stamp)


def usage_point_entry(paths: Paths, esi_id: str, stamp: str) -> str:
    href = paths.usage_point(esi_id)
    return _entry(href, paths.links.usage_points, ((f"{href}/MeterReading", "espi-feed/MeterReading"),
                                                   (paths.local_time, "espi-entry/LocalTimeParameters")),
                  "UsagePoint", f"ESI ID {esi_id}", USAGE_POINT_CONTENT, stamp, stamp)


def meter_reading_entry(paths: Paths, esi_id: str, channel: EspiChannel, stamp: str) -> str:
    href = paths.meter_reading(esi_id, channel)
    return _entry(href, f"{paths.usage_point(esi_id)}/MeterReading", (
        (f"{href}/IntervalBlock", "espi-feed/IntervalBlock"), (paths.reading_type(channel), "espi-entry/ReadingType")),
        "MeterReading", channel.title, METER_READING_CONTENT, stamp, stamp)


def reading_type_entry(paths: Paths, channel: EspiChannel, stamp: str) -> str:
    return _entry(paths.reading_type(channel), f"{paths.links.resource_base}/ReadingType", (), "ReadingType",
                  channel.title, reading_type_content(channel), stamp, stamp)


def interval_block_entry(paths: Paths, esi_id: str, channel: EspiChannel, day: date,  # noqa: PLR0917
                         bounds: tuple[int, int], readings: Sequence[str], published: datetime) -> str:
    mr = paths.meter_reading(esi_id, channel)
    stamp = atom_time(published)
    content = (f"<IntervalBlock xmlns=\"{ESPI_NS}\"><interval><duration>{bounds[1] - bounds[0]}</duration>"
               f"<start>{bounds[0]}</start></interval>{''.join(readings)}</IntervalBlock>")
    return _entry(f"{mr}/IntervalBlock/{block_id(day)}", f"{mr}/IntervalBlock", (), "IntervalBlock",
                  f"{day.isoformat()} (local day)", content, stamp, stamp)


def feed_head(links: FeedLinks, updated: datetime) -> str:
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"{ATOM_NS}\">"
            f"<id>{entry_id(links.self_href)}</id><title>{escape(links.title)}</title>"
            f"<updated>{atom_time(updated)}</updated>{_link('self', links.self_href, 'espi-feed/UsagePoint')}\n")


FEED_TAIL = "</feed>\n"


def entry_document(entry: str) -> bytes:
    """One entry as a document of its own (a resource-level GET of one resource)."""
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<entry xmlns=\"{ATOM_NS}\">"
            + entry.removeprefix("<entry>")).encode()


def feed_document(links: FeedLinks, updated: datetime, entries: Sequence[str]) -> bytes:
    """A small feed of entries already written (resource-level collections without interval data)."""
    return (feed_head(links, updated) + "".join(entries) + FEED_TAIL).encode()


# -- the streaming writer -------------------------------------------------------------------------

class Block(NamedTuple):
    """One IntervalBlock's worth of a channel: a local day's IntervalReading elements, in order
    (`readings` None when none of the day's intervals has a value: no block is written, but the
    premise and channel are), and when the newest of them was stored."""

    esi_id: str
    channel: str
    day: date
    readings: str | bytes | memoryview | None  # bytes, memoryview: UTF-8 already (a store's rendering), as they are
    newest: datetime | None


_SLOT = "\x00"  # where a block entry's readings go (no XML holds a NUL)


async def espi_feed(rows: AsyncIterator[UsageRow], *, links: FeedLinks, updated: datetime,
                    usage_points: Sequence[str] | None = None, blocks_only: bool = False,
                    chunk_bytes: int = 1 << 16) -> AsyncIterator[bytes]:
    """The Atom feed of `rows` as UTF-8 chunks of about `chunk_bytes`.

    `rows`: 15-minute intervals in (esi_id, channel, interval start) order (channel `consumption`
    before `generation`, as they sort). `usage_points`: when given, every ESI ID listed gets its
    UsagePoint entry, with or without rows, in that order (the rows must follow it); otherwise
    a UsagePoint is written for each ESI ID the rows name. `updated`: the feed's time, also the
    published/updated time of the entries that are not interval data (an IntervalBlock is
    published when its newest reading was stored). `blocks_only`: the IntervalBlock entries alone
    (a resource-level `…/MeterReading/{id}/IntervalBlock` feed; `usage_points` is ignored).
    Raises RowOrderError on rows out of order."""
    async for chunk in espi_feed_blocks(blocks_of(rows), links=links, updated=updated, usage_points=usage_points,
                                        blocks_only=blocks_only, chunk_bytes=chunk_bytes):
        yield chunk


async def blocks_of(rows: AsyncIterator[UsageRow]) -> AsyncIterator[Block]:
    """The rows, checked for their order, as one `Block` per premise, channel and local day."""
    esi_id, channel_name = "", ""
    seen_premises: set[str] = set()
    day: date | None = None
    bounds = (0, 0)
    readings: list[str] = []
    newest: datetime | None = None
    last_start = -1

    def block() -> Block | None:
        if day is None:
            return None
        return Block(esi_id, channel_name, day, "".join(readings) if newest is not None else None, newest)

    async for row in rows:
        start = int(row.interval_start.timestamp())
        if row.esi_id != esi_id or row.channel != channel_name:
            if (done := block()) is not None:
                yield done
            if row.esi_id != esi_id:
                if row.esi_id in seen_premises:
                    raise RowOrderError(f"rows of {row.esi_id} came after another premise's: the writer "
                                        f"needs (esi_id, channel, start) order")
                seen_premises.add(row.esi_id)
                esi_id, channel_name = row.esi_id, ""
            if row.channel <= channel_name:
                raise RowOrderError(f"channel {row.channel!r} of {row.esi_id} after {channel_name!r}")
            if row.channel not in CHANNELS:
                raise RowOrderError(f"channel {row.channel!r} of {row.esi_id}: not one of {sorted(CHANNELS)}")
            channel_name = row.channel
            day, bounds, last_start, readings, newest = None, (0, 0), -1, [], None
        if start <= last_start:
            raise RowOrderError(f"interval {row.interval_start.isoformat()} of {esi_id} {channel_name} "
                                f"after {datetime.fromtimestamp(last_start, UTC).isoformat()}")
        last_start = start
        if start >= bounds[1]:  # a new local day: the last one is complete
            if (done := block()) is not None:
                yield done
            day = local_day_of(start)
            bounds = local_day_bounds(day)
            readings, newest = [], None
        quality = row.quality
        if quality == "actual":
            readings.append(_READING % (row.length_s, start, row.value_wh))
        elif quality == "estimated":
            readings.append(_READING_ESTIMATED % (row.length_s, start, row.value_wh))
        elif quality != "missing":
            raise RowOrderError(f"quality {quality!r} of {esi_id} at {row.interval_start.isoformat()}: "
                                f"not actual, estimated or missing")
        else:
            continue
        received = row.received_at
        if newest is None or received > newest:
            newest = received
    if (done := block()) is not None:
        yield done


async def espi_feed_blocks(blocks: AsyncIterator[Block], *, links: FeedLinks, updated: datetime,
                           usage_points: Sequence[str] | None = None, blocks_only: bool = False,
                           chunk_bytes: int = 1 << 16) -> AsyncIterator[bytes]:
    """`espi_feed` of readings already made (`blocks_of` the rows, or a store's own rendering of
    the same IntervalReading elements: gateway/store/usage_reports.py), in (esi_id, channel, day)
    order; the same document."""
    paths = Paths(links)
    stamp = atom_time(updated)
    # Bytes: a store's rendered readings (most of the document) are written without a decode,
    # copy and encode of their own.
    out: list[bytes | memoryview] = [feed_head(links, updated).encode()]
    size = len(out[0])
    if not blocks_only:
        out.append(local_time_entry(paths, stamp).encode())
    else:
        usage_points = None
    listed = list(usage_points) if usage_points is not None else None
    position = {esi: i for i, esi in enumerate(listed)} if listed is not None else {}
    next_listed = 0  # the listed UsagePoints before this index are written
    types_written: set[str] = set()
    esi_id, channel_name = "", ""
    channel: EspiChannel | None = None

    async for b in blocks:
        if b.esi_id != esi_id or b.channel != channel_name:
            if b.esi_id != esi_id:
                if listed is not None:  # (None in a block feed: it has no UsagePoint entries)
                    at = position.get(b.esi_id)
                    if at is None or at < next_listed:
                        raise RowOrderError(f"rows of {b.esi_id}: not in usage_points, or out of its order")
                    for esi in listed[next_listed:at + 1]:
                        out.append(usage_point_entry(paths, esi, stamp).encode())
                    next_listed = at + 1
                elif not blocks_only:
                    out.append(usage_point_entry(paths, b.esi_id, stamp).encode())
                esi_id = b.esi_id
            found = CHANNELS.get(b.channel)
            if found is None:
                raise RowOrderError(f"channel {b.channel!r} of {b.esi_id}: not one of {sorted(CHANNELS)}")
            channel, channel_name = found, b.channel
            if not blocks_only:
                out.append(meter_reading_entry(paths, esi_id, channel, stamp).encode())
            if channel_name not in types_written and not blocks_only:
                types_written.add(channel_name)
                out.append(reading_type_entry(paths, channel, stamp).encode())
        if b.readings is not None and b.newest is not None and channel is not None:
            entry = interval_block_entry(paths, esi_id, channel, b.day, local_day_bounds(b.day), (_SLOT,), b.newest)
            head, tail = entry.split(_SLOT)
            readings = b.readings.encode() if isinstance(b.readings, str) else b.readings
            out += (head.encode(), readings, tail.encode())
            size += len(readings) + len(head) + len(tail)
            if size >= chunk_bytes:
                yield b"".join(out)
                out.clear()
                size = 0
    if listed is not None:
        for esi in listed[next_listed:]:
            out.append(usage_point_entry(paths, esi, stamp).encode())
    out.append(FEED_TAIL.encode())
    yield b"".join(out)
