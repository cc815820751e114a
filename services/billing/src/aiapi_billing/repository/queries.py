"""The read side: balances, ledger history, one request's priced record, daily totals."""

from __future__ import annotations

from datetime import date

from aiapi_shared.billing_api import (
    AccountBalanceReply,
    AccountQuery,
    DailyUsageQuery,
    DailyUsageReply,
    DailyUsageRow,
    LedgerEntry,
    LedgerQuery,
    LedgerReply,
    RequestRecordQuery,
    RequestRecordReply,
)
from aiapi_shared.events import Usage

from aiapi_billing.errors import NotFound
from aiapi_billing.repository import Conn


async def balance(conn: Conn, q: AccountQuery) -> AccountBalanceReply:
    cur = await conn.execute(
        "SELECT credits - debits, holds, version FROM accounts WHERE account_id = %s",
        (q.account_id,),
    )
    row = await cur.fetchone()
    settled, holds, version = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
    return AccountBalanceReply(
        account_id=q.account_id,
        balance=settled,
        available=settled - holds,
        open_holds=holds,
        version=version,
    )


async def ledger(conn: Conn, q: LedgerQuery) -> LedgerReply:
    cur = await conn.execute(
        "SELECT id, kind, to_account = 'cust:' || account_id, amount, balance_after, reference,"
        " created_at, memo FROM transfers WHERE account_id = %s AND id < %s"
        " ORDER BY id DESC LIMIT %s",
        (q.account_id, q.before_id if q.before_id is not None else 2**63 - 1, q.limit),
    )
    entries = [
        LedgerEntry(
            id=int(tid),
            kind=str(kind),
            amount=int(amount) if credit else -int(amount),
            balance_after=int(after),
            reference=str(ref),
            created_at=created,
            memo=str(memo),
        )
        for tid, kind, credit, amount, after, ref, created, memo in await cur.fetchall()
    ]
    return LedgerReply(entries=entries)


_USAGE_COLUMNS = (
    "input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens,"
    " cache_write_1h_tokens, thinking_tokens"
)
METER_COLUMNS = "web_search_requests, web_fetch_requests, service_tier, inference_geo, speed"


def usage_of(values: tuple[object, ...], meters: tuple[object, ...] = (0, 0, "", "", "")) -> Usage:
    """The six token columns (in ``_USAGE_COLUMNS`` order), and the five ``METER_COLUMNS``
    when read, as a ``Usage``."""
    i, o, cr, c5, c1, t = (int(str(v)) for v in values)
    search, fetch, tier, geo, speed = meters
    return Usage(
        web_search_requests=int(str(search)),
        web_fetch_requests=int(str(fetch)),
        service_tier=str(tier),
        inference_geo=str(geo),
        speed=str(speed),
        input_tokens=i,
        output_tokens=o,
        cache_read_input_tokens=cr,
        cache_creation_5m_input_tokens=c5,
        cache_creation_1h_input_tokens=c1,
        thinking_tokens=t,
    )


async def request_record(conn: Conn, q: RequestRecordQuery) -> RequestRecordReply:
    """One request's priced record; another account's request is as unknown as a missing one."""
    cur = await conn.execute(
        f"SELECT model, route, started_at, outcome, cost, {_USAGE_COLUMNS}, {METER_COLUMNS}"  # noqa: S608
        " FROM usage_records"
        " WHERE request_id = %s AND account_id = %s",
        (q.request_id, q.account_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no settled request {q.request_id}")
    model, route, started, outcome, cost, *usage = row
    tokens, meters = tuple(usage[:6]), tuple(usage[6:])
    return RequestRecordReply(
        id=q.request_id,
        model=str(model),
        route=str(route),
        created_at=started,
        status=str(outcome),
        usage=usage_of(tokens, meters),
        cost_usd=int(cost),
    )


async def daily_usage(conn: Conn, q: DailyUsageQuery) -> DailyUsageReply:
    sums = ", ".join(f"sum({c.strip()})" for c in _USAGE_COLUMNS.split(","))
    cur = await conn.execute(
        f"SELECT (started_at AT TIME ZONE 'UTC')::date AS day, model, count(*), {sums}, sum(cost)"  # noqa: S608
        " FROM usage_records WHERE account_id = %s"
        " AND started_at >= ((now() AT TIME ZONE 'UTC')::date - (%s::int - 1))::timestamp"
        " AT TIME ZONE 'UTC'"
        " GROUP BY day, model ORDER BY day, model",
        (q.account_id, q.days),
    )
    rows = []
    for day, model, count, *rest in await cur.fetchall():
        assert isinstance(day, date)
        rows.append(
            DailyUsageRow(
                day=day,
                model=str(model),
                requests=int(count),
                usage=usage_of(tuple(rest[:6])),
                cost=int(rest[6]),
            )
        )
    return DailyUsageReply(rows=rows)
