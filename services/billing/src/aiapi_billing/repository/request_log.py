"""The customer's request log and per-key daily totals (read side, SQL; I/O).

Pages are cut by keyset (``started_at``, ``request_id``) rather than OFFSET, so a page costs
the same on the thousandth page as on the first and a record settled meanwhile neither repeats
nor hides one (index ``usage_records_log_idx``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiapi_shared.billing_api import (
    DailyKeyUsageReply,
    DailyKeyUsageRow,
    DailyUsageQuery,
    RequestListQuery,
    RequestListReply,
    RequestLogRow,
    UsageSeries,
    UsageSeriesReply,
)

from aiapi_billing.errors import BillingError
from aiapi_billing.repository import Conn
from aiapi_billing.repository.queries import METER_COLUMNS, usage_of

TOKEN_METERS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "thinking_tokens",
)


async def request_list(conn: Conn, q: RequestListQuery) -> RequestListReply:
    if (q.before_started_at is None) != (q.before_request_id is None):
        raise BillingError("a page position needs both before_started_at and before_request_id")
    where = ["account_id = %s"]
    params: list[Any] = [q.account_id]
    for column, value in (("key_id", q.key_id), ("model", q.model)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if q.since is not None:
        where.append("started_at >= %s")
        params.append(q.since)
    if q.until is not None:
        where.append("started_at < %s")
        params.append(q.until)
    if q.before_started_at is not None:
        where.append("(started_at, request_id) < (%s, %s)")
        params += [q.before_started_at, q.before_request_id]
    params.append(q.limit + 1)  # one more tells whether another page follows
    cur = await conn.execute(
        "SELECT request_id, key_id, model, route, started_at, outcome, status_code, cost, "  # noqa: S608 (fixed column names; values are parameters)
        + ", ".join(TOKEN_METERS)
        + ", "
        + METER_COLUMNS
        + " FROM usage_records WHERE "
        + " AND ".join(where)
        + " ORDER BY started_at DESC, request_id DESC LIMIT %s",
        params,
    )
    rows = await cur.fetchall()
    records = [
        RequestLogRow(
            id=str(rid),
            key_id=str(key_id),
            model=str(model),
            route=str(route),
            created_at=started,
            status=str(outcome),
            status_code=int(code),
            cost_usd=int(cost),
            usage=usage_of(tuple(meters[:6]), tuple(meters[6:])),
        )
        for rid, key_id, model, route, started, outcome, code, cost, *meters in rows[: q.limit]
    ]
    return RequestListReply(records=records, more=len(rows) > q.limit)


async def daily_key_usage(conn: Conn, q: DailyUsageQuery) -> DailyKeyUsageReply:
    """From the ``usage_daily`` rollup (migration 0016), kept as records are inserted."""
    cur = await conn.execute(
        "SELECT day, model, key_id, requests, "  # noqa: S608 (fixed column names)
        + ", ".join(TOKEN_METERS)
        + ", cost FROM usage_daily WHERE account_id = %s"
        " AND day >= (now() AT TIME ZONE 'UTC')::date - (%s::int - 1)"
        " ORDER BY day, model, key_id",
        (q.account_id, q.days),
    )
    rows = []
    for day, model, key_id, count, *rest in await cur.fetchall():
        assert isinstance(day, date)
        rows.append(
            DailyKeyUsageRow(
                day=day,
                model=str(model),
                key_id=str(key_id),
                requests=int(count),
                usage=usage_of(tuple(rest[:6])),
                cost=int(rest[6]),
            )
        )
    return DailyKeyUsageReply(rows=rows)


_TOKENS = (
    "sum(input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens"
    " + cache_write_1h_tokens)"
)


async def usage_series(conn: Conn, q: DailyUsageQuery) -> UsageSeriesReply:
    """Per day by model and per day by key, from the ``usage_daily`` rollup in one statement
    (``GROUPING SETS``): at most ``days`` x (models + keys) rows, whatever the request count."""
    cur = await conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date - (%s::int - 1)", (q.days,))
    first = await cur.fetchone()
    assert first is not None and isinstance(first[0], date)
    first_day: date = first[0]
    cur = await conn.execute(
        "SELECT day, model, key_id, sum(requests), "  # noqa: S608 (fixed expressions)
        + _TOKENS
        + ", sum(cost) FROM usage_daily WHERE account_id = %s AND day >= %s"
        " GROUP BY GROUPING SETS ((day, model), (day, key_id))",
        (q.account_id, first_day),
    )
    # name -> (requests, tokens, cost), each a value per day of the span
    groups: tuple[dict[str, tuple[list[int], ...]], ...] = ({}, {})
    for day, model, key_id, *values in await cur.fetchall():
        assert isinstance(day, date)
        i = (day - first_day).days
        if not 0 <= i < q.days:
            continue  # a record dated ahead of this database's clock
        group, name = (groups[0], model) if model is not None else (groups[1], key_id)
        arrays = group.get(str(name))
        if arrays is None:
            arrays = group[str(name)] = tuple([0] * q.days for _ in values)
        for array, value in zip(arrays, values, strict=True):
            array[i] = int(value)
    by_model, by_key = (
        [
            UsageSeries(name=name, requests=requests, tokens=tokens, cost=cost)
            for name, (requests, tokens, cost) in sorted(group.items())
        ]
        for group in groups
    )
    return UsageSeriesReply(first_day=first_day, days=q.days, by_model=by_model, by_key=by_key)
