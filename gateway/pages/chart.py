"""The dashboard's chart of deliveries and device answers per hour, drawn on the server as SVG
(readable without JavaScript; the same numbers are in a table beside it for screen readers and
for anyone who prefers numbers). Hand-written: a two-series bar chart is a few rectangles, and a
charting library would bring JavaScript or a plotting stack to the gateway for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int


@dataclass(frozen=True)
class Chart:
    starts: list[datetime]  # each interval's start
    deliveries: list[Bar]
    answers: list[Bar]
    rows: list[tuple[datetime, int, int]]  # the table: start, deliveries, answers
    top: int  # the y axis' largest value
    ticks: list[tuple[float, int]]  # (y, value) of the horizontal grid lines
    labels: list[tuple[float, datetime]]  # (x, start) of the interval labels shown
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = HEIGHT - BOTTOM


def hour_edges(now: datetime, hours: int = 24) -> list[datetime]:
    """`hours` + 1 edges: whole hours, the last one just after `now`."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return [end - timedelta(hours=hours - i) for i in range(hours + 1)]


def _nice_top(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (a readable axis)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def bar_chart(edges: list[datetime], counts: list[tuple[int, int]]) -> Chart:
    top = _nice_top(max([max(d, a) for d, a in counts] + [1]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(counts), 1)
    bar_w = slot * 0.38
    deliveries: list[Bar] = []
    answers: list[Bar] = []
    for i, (d, a) in enumerate(counts):
        for value, offset, series in ((d, 0.1, deliveries), (a, 0.52, answers)):
            h = plot_h * value / top
            series.append(Bar(LEFT + i * slot + slot * offset, TOP + plot_h - h, bar_w, h, value))
    ticks = [(TOP + plot_h - plot_h * k / 4, round(top * k / 4)) for k in range(5)]
    labels = [(LEFT + i * slot + slot / 2, edges[i]) for i in range(0, len(counts), 4)]
    return Chart(edges[:-1], deliveries, answers, [(edges[i], d, a) for i, (d, a) in enumerate(counts)],
                 top, ticks, labels)
