"""The usage charts' series and SVG, and the request log's query string (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.pages.charts import PALETTE, day_range, series_by, stacked_bars
from aiapi_accounts.request_filter import csv_row, encode_cursor, list_query
from aiapi_shared.billing_api import RequestLogRow
from aiapi_shared.events import Usage

DAYS = day_range(date(2026, 12, 7), 3)


def test_series_keep_the_largest_in_name_order_and_fold_the_rest() -> None:
    assert [date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 7)] == DAYS
    points = [(DAYS[0], "b", 5), (DAYS[2], "a", 1), (DAYS[2], "b", 2), (date(2020, 1, 1), "a", 9)]
    assert series_by(points, DAYS) == {"a": [0, 0, 1], "b": [5, 0, 2]}  # out of range dropped
    many = [(DAYS[1], f"m{i:02}", 100 - i) for i in range(len(PALETTE) + 2)]
    folded = series_by(many, DAYS)
    assert list(folded)[-1] == "other"
    assert folded["other"] == [0, 93 + 92, 0]  # the two smallest of nine
    assert sum(sum(v) for v in folded.values()) == sum(v for _, _, v in many)


def test_bars_carry_exact_titles_and_totals() -> None:
    chart = stacked_bars(
        "Cost <per> day", DAYS, {"x": [0, 3, 1], "y": [0, 2, 0]}, lambda n: f"{n} nano"
    )
    assert chart.totals == (0, 5, 1)
    assert 'aria-label="Cost &lt;per&gt; day: bar chart' in chart.svg
    assert "<title>2026-12-06 · x: 3 nano</title>" in chart.svg
    assert "max 5 nano a day" in chart.svg
    assert chart.svg.count("<rect") == 3  # zero values draw nothing
    assert stacked_bars("empty", DAYS, {}, str).svg.count("<rect") == 0


def row(request_id: str) -> RequestLogRow:
    return RequestLogRow(
        id=request_id, key_id="key_1", model="m", route="anthropic",
        created_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC), status="ok", status_code=200,
        usage=Usage(input_tokens=3, output_tokens=4), cost_usd=1234,
    )  # fmt: skip


def test_the_query_string_becomes_a_billing_query() -> None:
    query = list_query(
        "acc", {"from": "2026-12-01", "to": "2026-12-07", "model": "m", "key_id": "", "limit": "5"}
    )
    assert query.since == datetime(2026, 12, 1, tzinfo=UTC)
    assert query.until == datetime(2026, 12, 8, tzinfo=UTC)  # a date "to" includes that day
    assert (query.model, query.key_id, query.limit) == ("m", None, 5)
    after = list_query("acc", {"cursor": encode_cursor(row("req_9"))})
    assert (after.before_started_at, after.before_request_id) == (row("x").created_at, "req_9")
    for bad in ({"from": "yesterday"}, {"cursor": "not-ours"}, {"limit": "0"}, {"limit": "5000"}):
        with pytest.raises(InvalidRequest):
            list_query("acc", bad)


def test_csv_rows_keep_money_exact() -> None:
    assert csv_row(row("req_1"))[-1] == "0.000001234"
    assert csv_row(row("req_1"))[:3] == ["req_1", "2026-12-07T09:00:00+00:00", "key_1"]
