"""Stacked bar charts of usage per day as inline SVG (pure: numbers in, markup out).

Drawn on the server, so the page needs no chart library and no script. Each bar segment carries
a ``<title>`` with its exact value; the axis shows the largest day exactly; the figures behind a
chart are also given as a table for screen readers and for copying.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

# Distinguishable in light and dark schemes and for the common colour-vision deficiencies
# (Okabe-Ito); the rest of a long series is folded into "other".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHER = "#999999"
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 300, 8, 34, 34


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    legend: tuple[tuple[str, str], ...]  # (label, colour)
    days: tuple[date, ...]
    totals: tuple[int, ...]  # per day, all series together
    describe: Callable[[int], str]


def day_range(last: date, days: int) -> list[date]:
    return [last - timedelta(days=days - 1 - i) for i in range(days)]


def series_by(points: Iterable[tuple[date, str, int]], days: list[date]) -> dict[str, list[int]]:
    """Values per series and day: the ``len(PALETTE)`` largest series by total, in name order
    (so a model keeps its colour from one chart to the next), the rest summed as "other"."""
    index = {d: i for i, d in enumerate(days)}
    found: dict[str, list[int]] = {}
    for day, name, value in points:
        if day in index:
            found.setdefault(name, [0] * len(days))[index[day]] += value
    ranked = sorted(found.items(), key=lambda item: (-sum(item[1]), item[0]))
    kept = dict(sorted(ranked[: len(PALETTE)]))
    rest = ranked[len(PALETTE) :]
    if rest:
        kept["other"] = [sum(values[i] for _, values in rest) for i in range(len(days))]
    return kept


def stacked_bars(
    title: str, days: list[date], series: dict[str, list[int]], describe: Callable[[int], str]
) -> Chart:
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    top = max(totals, default=0)
    colours = {name: OTHER if name == "other" else PALETTE[i] for i, name in enumerate(series)}
    plot_h = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(days), 1)
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}: bar chart; the same figures are in the table below">',
        f'<text x="{LEFT}" y="24" class="axis">max {html.escape(describe(top))} a day</text>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" '
        'class="baseline"/>',
    ]
    for i, day in enumerate(days):
        y = float(HEIGHT - BOTTOM)
        for name, values in series.items():
            value = values[i]
            if value <= 0 or top <= 0:
                continue
            h = value / top * plot_h
            y -= h
            tip = f"{day.isoformat()} · {name}: {describe(value)}"
            parts.append(
                f'<rect x="{LEFT + i * slot:.2f}" y="{y:.2f}" width="{bar:.2f}" '
                f'height="{max(h, 0.5):.2f}" fill="{colours[name]}">'
                f"<title>{html.escape(tip)}</title></rect>"
            )
    for i in (0, len(days) - 1):
        if days:
            anchor = "start" if i == 0 else "end"
            x = LEFT if i == 0 else WIDTH
            parts.append(
                f'<text x="{x}" y="{HEIGHT - 6}" text-anchor="{anchor}" class="axis">'
                f"{days[i].isoformat()}</text>"
            )
    parts.append("</svg>")
    return Chart(
        title=title,
        svg="".join(parts),
        legend=tuple(colours.items()),
        days=tuple(days),
        totals=tuple(totals),
        describe=describe,
    )
