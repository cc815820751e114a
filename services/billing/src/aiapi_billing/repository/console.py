"""The operator console's read side (SQL; I/O): accounts ranked by their figures, the owner of a
``request-id``, the business report and the last minute's settlements.

Only fixed fragments of this module are composed into statements; every value is a parameter.
Revenue is read from ``usage_records.cost``: the auditor proves it equal to the ledger's usage
transfers, record by record (``repository/audit.py``), and the records carry the model, plan and
list cost a report groups and compares by.
"""

# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from aiapi_shared.console_api import (
    SPEND_DAYS,
    TIME_GROUPINGS,
    AccountFigures,
    AccountListQuery,
    AccountListReply,
    LiveQuery,
    Meters,
    RequestOwnerQuery,
    RequestOwnerReply,
    UsageReportQuery,
    UsageReportReply,
    UsageReportRow,
)

from aiapi_billing.errors import BillingError
from aiapi_billing.repository import Conn
from aiapi_billing.repository.request_log import TOKEN_METERS

# -- accounts ranked --------------------------------------------------------------------------

_SPEND = (
    "SELECT account_id, sum(cost) AS spend FROM usage_daily"
    " WHERE day > (now() AT TIME ZONE 'UTC')::date - %(days)s::int"
)
_EVERY_ACCOUNT = (
    f"WITH spend AS ({_SPEND} GROUP BY account_id)"
    " SELECT a.account_id, a.credits - a.debits AS balance, a.holds,"
    " coalesce(s.spend, 0) AS spend"
    " FROM accounts a LEFT JOIN spend s USING (account_id)"
)
# Every named account, billing's figures or zeros for one it has not heard of yet.
_NAMED_ACCOUNTS = (
    f"WITH spend AS ({_SPEND} AND account_id = ANY(%(ids)s) GROUP BY account_id)"
    " SELECT n.account_id, coalesce(a.credits - a.debits, 0) AS balance,"
    " coalesce(a.holds, 0) AS holds, coalesce(s.spend, 0) AS spend"
    " FROM unnest(%(ids)s::text[]) AS n(account_id)"
    " LEFT JOIN accounts a USING (account_id) LEFT JOIN spend s USING (account_id)"
)
_SORT_COLUMNS = {"balance": "balance", "spend": "spend"}


async def account_list(conn: Conn, q: AccountListQuery) -> AccountListReply:
    base = _EVERY_ACCOUNT if q.account_ids is None else _NAMED_ACCOUNTS
    params: dict[str, Any] = {"days": SPEND_DAYS, "ids": q.account_ids, "n": q.limit + 1}
    if q.sort is None:
        statement = f"SELECT * FROM ({base}) r ORDER BY account_id LIMIT %(n)s"
    else:
        column = _SORT_COLUMNS[q.sort]
        direction, compare = ("DESC", "<") if q.order == "desc" else ("ASC", ">")
        where = ""
        if (q.after_value is None) != (q.after_id is None):
            raise BillingError("a page position needs both after_value and after_id")
        if q.after_value is not None:
            where = f" WHERE (r.{column}, r.account_id) {compare} (%(v)s, %(i)s)"
            params |= {"v": q.after_value, "i": q.after_id}
        statement = (
            f"SELECT * FROM ({base}) r{where}"
            f" ORDER BY r.{column} {direction}, r.account_id {direction} LIMIT %(n)s"
        )
    cur = await conn.execute(statement, params)
    rows = await cur.fetchall()
    figures = [
        AccountFigures(
            account_id=str(account_id),
            balance=int(balance),
            available=int(balance) - int(holds),
            holds=int(holds),
            spend=int(spend),
        )
        for account_id, balance, holds, spend in rows[: q.limit]
    ]
    return AccountListReply(rows=figures, more=len(rows) > q.limit)


async def request_owner(conn: Conn, q: RequestOwnerQuery) -> RequestOwnerReply:
    """A settled request's account, else the account of its open or closed hold."""
    cur = await conn.execute(
        "SELECT account_id FROM usage_records WHERE request_id = %(r)s"
        " UNION ALL SELECT account_id FROM holds WHERE request_id = %(r)s LIMIT 1",
        {"r": q.request_id},
    )
    row = await cur.fetchone()
    return RequestOwnerReply(account_id=str(row[0]) if row else None)


# -- the business report ----------------------------------------------------------------------


def _period(column: str, unit: str) -> str:
    return f"to_char(date_trunc('{unit}', {column} AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"


_USAGE_KEYS = {
    "day": _period("started_at", "day"),
    "week": _period("started_at", "week"),
    "month": _period("started_at", "month"),
    "model": "model",
    "plan": "plan",
    "account": "account_id",
}
_BOOKED_KEYS = {
    "day": _period("created_at", "day"),
    "week": _period("created_at", "week"),
    "month": _period("created_at", "month"),
    "account": "account_id",
}
# The columns summed into ``Meters``, under the same names.
_METER_SUMS = (*TOKEN_METERS, "web_search_requests", "web_fetch_requests")


async def usage_report(conn: Conn, q: UsageReportQuery) -> UsageReportReply:
    if q.until <= q.since:
        raise BillingError("the report's end must be after its start")
    rows: dict[str, UsageReportRow] = {}
    key = _USAGE_KEYS[q.group_by]
    sums = ", ".join(f"sum({column})" for column in _METER_SUMS)
    cur = await conn.execute(
        f"SELECT {key} AS k, count(*), {sums}, sum(cost), coalesce(sum(list_cost), 0),"
        " count(*) FILTER (WHERE list_cost IS NULL), count(DISTINCT account_id)"
        " FROM usage_records WHERE started_at >= %s AND started_at < %s GROUP BY k",
        (q.since, q.until),
    )
    width = len(_METER_SUMS)
    for k, count, *rest in await cur.fetchall():
        meters = Meters(**{name: int(v) for name, v in zip(_METER_SUMS, rest[:width], strict=True)})
        revenue, upstream, unpriced, active = (int(v) for v in rest[width:])
        rows[str(k)] = UsageReportRow(
            key=str(k),
            requests=int(count),
            meters=meters,
            revenue=revenue,
            upstream_cost=upstream,
            unpriced_requests=unpriced,
            active_accounts=active,
        )
    if q.group_by in (*TIME_GROUPINGS, "account"):
        await _add_bookings(conn, q, rows)
    return UsageReportReply(rows=[rows[k] for k in sorted(rows)])


async def _add_bookings(conn: Conn, q: UsageReportQuery, rows: dict[str, UsageReportRow]) -> None:
    """Plan sales and deposits (credited less reversed; the asset is the second part of the
    deposit id ``network:asset:tx_hash:position``), by the moment the ledger booked them."""
    key = _BOOKED_KEYS[q.group_by]
    cur = await conn.execute(
        f"SELECT {key} AS k, kind, CASE WHEN kind = 'plan_purchase' THEN ''"
        " ELSE split_part(reference, ':', 2) END AS asset, sum(amount)"
        " FROM transfers WHERE kind IN ('deposit', 'deposit_reversal', 'plan_purchase')"
        " AND created_at >= %s AND created_at < %s GROUP BY k, kind, asset",
        (q.since, q.until),
    )
    for k, kind, asset, amount in await cur.fetchall():
        row = rows.get(str(k)) or UsageReportRow(key=str(k))
        if kind == "plan_purchase":
            row = row.model_copy(update={"plan_sales": row.plan_sales + int(amount)})
        else:
            signed = int(amount) if kind == "deposit" else -int(amount)
            deposits = dict(row.deposits)
            deposits[str(asset)] = deposits.get(str(asset), 0) + signed
            row = row.model_copy(update={"deposits": deposits})
        rows[str(k)] = row


# -- the last minute --------------------------------------------------------------------------


async def live(conn: Conn, q: LiveQuery) -> dict[str, Any]:
    """The window's settled requests by outcome and status class, its revenue and longest
    settlement delay, and the open holds and leases now (the caller adds the stream backlog)."""
    window = {"w": q.window_s}
    since = "started_at >= now() - make_interval(secs => %(w)s)"
    cur = await conn.execute(
        f"SELECT outcome, (status_code / 100)::text || 'xx', count(*), sum(cost),"
        " max(extract(epoch FROM settled_at - finished_at))"
        f" FROM usage_records WHERE {since} GROUP BY 1, 2",
        window,
    )
    by_outcome: dict[str, int] = {}
    by_class: dict[str, int] = {}
    revenue, lag = 0, None
    for outcome, status_class, count, cost, longest in await cur.fetchall():
        by_outcome[str(outcome)] = by_outcome.get(str(outcome), 0) + int(count)
        by_class[str(status_class)] = by_class.get(str(status_class), 0) + int(count)
        revenue += int(cost)
        lag = max(float(longest), lag or 0.0)
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM holds WHERE state = 'open'),"
        " (SELECT count(*) FROM leases WHERE state IN ('open', 'closed'))"
    )
    found = await cur.fetchone()
    assert found is not None
    return {
        "window_s": q.window_s,
        "requests": sum(by_outcome.values()),
        "by_outcome": by_outcome,
        "by_status_class": by_class,
        "revenue": revenue,
        "settlement_lag_s": lag,
        "open_holds": int(found[0]),
        "open_leases": int(found[1]),
    }
