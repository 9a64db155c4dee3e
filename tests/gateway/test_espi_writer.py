"""The streaming ESPI writer on its own: it consumes rows lazily and yields bytes before the rows
end; what it writes passes our strict subset schema (which refuses a wrong code, a link without its
type, a wrong child order); quality maps as documented (docs/green-button.md); rows out of order
stop it with a typed error instead of a wrong feed."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xmlschema
from greenbutton_objects.parse import parse_feed
from hypothesis import given
from hypothesis import strategies as st

from gateway.greenbutton import FeedLinks, RowOrderError, espi_feed
from gateway.greenbutton.writer import entry_id
from gateway.store.usage import StoredRead

SUBSET = Path(__file__).parents[2] / "gateway" / "greenbutton" / "schema" / "atom-subset.xsd"
BASE = "https://gw.example/espi/1_1/resource"
LINKS = FeedLinks(BASE, f"{BASE}/Subscription/7/UsagePoint", f"{BASE}/Batch/Subscription/7", "test feed")
NOW = datetime(2026, 11, 20, tzinfo=UTC)
START = int(datetime(2026, 10, 30, 5, tzinfo=UTC).timestamp())  # local midnight, CDT


def row(esi: str, channel: str, t: int, wh: int, quality: str = "actual") -> StoredRead:
    return StoredRead(esi, channel, datetime.fromtimestamp(t, UTC), 900, wh, quality, "sim", NOW)


def rows(premises: Sequence[str], days: int) -> list[StoredRead]:
    return [row(esi, channel, START + 900 * i, 100 + i % 37) for esi in premises
            for channel in ("consumption", "generation") for i in range(96 * days)]


class Source:
    """Rows handed out one at a time, counting how many were taken."""

    def __init__(self, items: Sequence[StoredRead]) -> None:
        self.items, self.taken = items, 0

    async def __aiter__(self) -> AsyncIterator[StoredRead]:
        for item in self.items:
            self.taken += 1
            yield item


async def write(items: Sequence[StoredRead], **kwargs: object) -> bytes:
    return b"".join([c async for c in espi_feed(Source(items).__aiter__(), links=LINKS, updated=NOW,
                                                **kwargs)])  # type: ignore[arg-type]


def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SUBSET))


async def test_streams_before_the_rows_end_and_validates() -> None:
    source = Source(rows(["10443720000000001", "10443720000000002", "10443720000000003"], 10))
    chunks, taken_at_first = [], None
    async for chunk in espi_feed(source.__aiter__(), links=LINKS, updated=NOW, chunk_bytes=8192):
        if taken_at_first is None:
            taken_at_first = source.taken
        chunks.append(chunk)
    assert len(chunks) > 10 and taken_at_first is not None and taken_at_first < len(source.items) / 10
    assert max(map(len, chunks)) < 8192 + 16_000  # about a chunk, plus at most a day's block
    body = b"".join(chunks)
    schema().validate(io.BytesIO(body))
    feed = parse_feed(io.BytesIO(body))
    assert sorted(up.title for up in feed) == [f"ESI ID 1044372000000000{n}" for n in (1, 2, 3)]
    assert all(len(list(mr.intervalReadings)) == 960 for up in feed for mr in up.meterReadings)
    # The fall-back day (Sunday 1 November 2026) is one block of 100 intervals, 25 hours.
    fall_back = int(datetime(2026, 11, 1, 5, tzinfo=UTC).timestamp())  # 00:00 CDT
    assert body.count(f"<interval><duration>90000</duration><start>{fall_back}</start>".encode()) == 3 * 2


async def test_quality_mapping_missing_left_out_and_listed_premises_without_rows() -> None:
    esi = "10443720000000001"
    items = [row(esi, "consumption", START, 10), row(esi, "consumption", START + 900, 11, "estimated"),
             row(esi, "consumption", START + 1800, 0, "missing"), row(esi, "consumption", START + 2700, 13)]
    body = await write(items, usage_points=[esi, "10443720000000002"])
    schema().validate(io.BytesIO(body))
    feed = {up.title: up for up in parse_feed(io.BytesIO(body))}
    assert set(feed) == {f"ESI ID {esi}", "ESI ID 10443720000000002"}
    (mr,) = feed[f"ESI ID {esi}"].meterReadings
    got = [(r.timePeriod.start.timestamp(), r.value, [q.quality.value for q in r.readingQualities])
           for r in mr.intervalReadings]
    assert got == [(START, 10, []), (START + 900, 11, [8]), (START + 2700, 13, [])]
    assert feed["ESI ID 10443720000000002"].meterReadings == set()


@pytest.mark.parametrize(("items", "words"), [
    ([row("1", "consumption", START + 900, 1), row("1", "consumption", START, 1)], "after"),
    ([row("1", "generation", START, 1), row("1", "consumption", START, 1)], "channel 'consumption'"),
    ([row("1", "consumption", START, 1), row("2", "consumption", START, 1), row("1", "consumption", START, 1)],
     "came after another premise"),
    ([row("1", "reactive", START, 1)], "not one of"),
    ([row("1", "consumption", START, 1, "guessed")], "quality 'guessed'"),
])
async def test_rows_out_of_order_stop_the_writer(items: list[StoredRead], words: str) -> None:
    with pytest.raises(RowOrderError, match=words):
        await write(items)


async def test_the_subset_schema_is_strict() -> None:
    body = (await write(rows(["10443720000000001"], 1))).decode()
    schema().validate(io.StringIO(body))
    for broken in (body.replace("<flowDirection>1<", "<flowDirection>4<"),  # the published one accepts it
                   body.replace(' type="espi-entry/UsagePoint"', "", 1),
                   body.replace("<dstOffset>3600</dstOffset><dstStartRule>360E2000</dstStartRule>",
                                "<dstStartRule>360E2000</dstStartRule><dstOffset>3600</dstOffset>"),
                   body.replace("<uom>72</uom>", "<uom>38</uom>")):
        assert broken != body
        assert not schema().is_valid(io.StringIO(broken))


@given(st.text(max_size=300))
def test_entry_ids_are_the_uuid5_of_the_url(href: str) -> None:
    # The writer makes the version 5 UUID without the uuid module's object: the same text.
    assert entry_id(href) == f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, href)}"
