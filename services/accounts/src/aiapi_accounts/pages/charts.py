"""Stacked bar charts of values per UTC day, for any dashboard page (pure: numbers in, a chart
description out). The customer's usage page uses it; the operator console may too.

The bars are drawn in the browser by Chart.js (``static/vendor/chart.umd.min.js``, vendored
from npm, see docs/dashboard.md) through ``static/charts.js``; this module decides what is drawn:
which series (the largest few, the rest folded into "other"), their colours, and every value as
an exact decimal string, so no figure is rounded on its way to the page. The same figures are
always in a table next to the chart (``templates/_chart.html``): the chart's text alternative,
and what a page without JavaScript shows.

Use::

    chart = stacked_by_day("cost-by-model", "Cost per day by model", "USD", first_day,
                           [("claude-opus-4-7", [0, 1_500_000_000, ...]), ...], format_usd)
    # in a template:  {% include "_chart.html" %}  with ``chart`` in scope
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from html import escape
from typing import Any

from markupsafe import Markup

# Distinguishable in light and dark schemes and for the common colour-vision deficiencies
# (Okabe-Ito); the rest of a long series is folded into "other".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHER = "#999999"


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: tuple[int, ...]  # one a day, oldest first


@dataclass(frozen=True)
class Chart:
    """What ``_chart.html`` and ``charts.js`` need: an element id, a title, the unit the values
    are in, the days, the series, and how one value is written exactly."""

    id: str
    title: str
    unit: str
    first_day: date
    series: tuple[Series, ...]
    text: Callable[[int], str]

    @cached_property
    def days(self) -> tuple[date, ...]:
        width = len(self.series[0].values) if self.series else 0
        return tuple(self.first_day + timedelta(days=i) for i in range(width))

    @cached_property
    def totals(self) -> tuple[int, ...]:
        return tuple(sum(column) for column in zip(*(s.values for s in self.series), strict=True))

    @cached_property
    def _texts(self) -> list[list[str]]:
        # Written once, shared by the JSON and the table (a year of bars is thousands of values).
        return [[self.text(v) for v in s.values] for s in self.series]

    def rows(self) -> list[tuple[str, list[str], str]]:
        """The table: each day with any value (ISO date), its value per series and its total,
        written exactly."""
        texts = self._texts
        return [
            (day.isoformat(), [column[i] for column in texts], self.text(total))
            for i, (day, total) in enumerate(zip(self.days, self.totals, strict=True))
            if total
        ]

    def table_rows(self) -> Markup:
        """:meth:`rows` as the table body's HTML, escaped. Built here rather than in a template
        loop: a year of four charts is some 7,000 cells, and a loop escaping each costs tens of
        milliseconds a page."""
        return Markup(  # noqa: S704 (every value is escaped; the rest is fixed markup)
            "".join(
                f'<tr><th scope="row">{day}</th>'
                + "".join(f'<td class="num">{escape(v)}</td>' for v in values)
                + f'<td class="num">{escape(total)}</td></tr>\n'
                for day, values, total in self.rows()
            )
        )

    def spec(self) -> dict[str, Any]:
        """The JSON ``charts.js`` draws from (values as exact decimal strings)."""
        return {
            "title": self.title,
            "unit": self.unit,
            "labels": [d.isoformat() for d in self.days],
            "series": [
                {"name": s.name, "colour": s.colour, "values": texts}
                for s, texts in zip(self.series, self._texts, strict=True)
            ],
        }


def fold(named: Iterable[tuple[str, Sequence[int]]], keep: int = len(PALETTE)) -> list[Series]:
    """The ``keep`` largest series by total, in name order (so a model keeps its colour from one
    chart to the next), coloured from the palette; the rest summed as "other"."""
    found = [(name, tuple(values)) for name, values in named if any(values)]
    ranked = sorted(found, key=lambda item: (-sum(item[1]), item[0]))
    kept = sorted(ranked[:keep])
    series = [Series(name, PALETTE[i], values) for i, (name, values) in enumerate(kept)]
    rest = [values for _, values in ranked[keep:]]
    if rest:
        series.append(Series("other", OTHER, tuple(sum(day) for day in zip(*rest, strict=True))))
    return series


def stacked_by_day(
    chart_id: str,
    title: str,
    unit: str,
    first_day: date,
    named: Iterable[tuple[str, Sequence[int]]],
    text: Callable[[int], str],
) -> Chart:
    """A stacked bar chart, one bar a day from ``first_day``; ``named`` gives each series' values
    (all of the same length), ``text`` writes one value exactly (``format_usd``, ``str``)."""
    return Chart(chart_id, title, unit, first_day, tuple(fold(named)), text)
