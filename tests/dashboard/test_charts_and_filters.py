"""The usage charts' series and values, and the request log's query string (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.pages.charts import OTHER, PALETTE, fold, stacked_by_day
from aiapi_accounts.request_filter import csv_row, encode_cursor, list_query
from aiapi_shared.billing_api import RequestLogRow
from aiapi_shared.events import Usage
from aiapi_shared.money import format_usd

FIRST = date(2026, 12, 5)


def test_series_keep_the_largest_in_name_order_and_fold_the_rest() -> None:
    kept = fold([("b", [5, 0, 2]), ("a", [0, 0, 1]), ("idle", [0, 0, 0])])
    assert [(s.name, s.values) for s in kept] == [("a", (0, 0, 1)), ("b", (5, 0, 2))]
    assert [s.colour for s in kept] == list(PALETTE[:2])  # a series without usage is left out
    many = [(f"m{i:02}", [0, 100 - i, 0]) for i in range(len(PALETTE) + 2)]
    folded = fold(many)
    assert [s.name for s in folded][-1] == "other"
    assert folded[-1].values == (0, 93 + 92, 0)  # the two smallest of nine
    assert folded[-1].colour == OTHER
    assert sum(sum(s.values) for s in folded) == sum(v[1] for _, v in many)


def test_a_chart_carries_exact_values_for_the_browser_and_the_table() -> None:
    chart = stacked_by_day(
        "c", "Cost <per> day", "USD", FIRST, [("x", [0, 3, 1]), ("y", [0, 2, 0])], format_usd
    )
    assert chart.days == (FIRST, date(2026, 12, 6), date(2026, 12, 7))
    assert chart.totals == (0, 5, 1)
    spec = chart.spec()
    assert spec["labels"] == ["2026-12-05", "2026-12-06", "2026-12-07"]
    assert spec["series"][0] == {
        "name": "x", "colour": PALETTE[0], "values": ["0.00", "0.000000003", "0.000000001"]
    }  # fmt: skip
    # Days without usage are left out of the table; each value and total written exactly.
    assert chart.rows() == [
        ("2026-12-06", ["0.000000003", "0.000000002"], "0.000000005"),
        ("2026-12-07", ["0.000000001", "0.00"], "0.000000001"),
    ]
    empty = stacked_by_day("e", "empty", "tokens", FIRST, [("idle", [0, 0, 0])], str)
    assert (empty.series, empty.days, empty.rows()) == ((), (), [])


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
