"""The business report's query string, rows and CSV (pure: billing's groups in, answers out).

Revenue is what customers paid for their usage (the ledger's usage debits, after each plan's
discount); upstream cost is the upstream's list price of the same usage; the margin is their
difference. ``tokens`` adds the five token meters (input, output, cache read, both cache
writes); thinking tokens are part of the output and are shown, not added again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from aiapi_shared.console_api import TIME_GROUPINGS, Grouping, Meters, UsageReportQuery
from aiapi_shared.console_api import UsageReportRow as Group
from aiapi_shared.money import Money, format_usd
from pydantic import Field

from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.request_filter import moment
from aiapi_accounts.schemas import Answer

GROUPINGS: tuple[Grouping, ...] = ("day", "week", "month", "model", "plan", "account")
MAX_DAYS = 1100  # three years of months; a longer report is asked in parts
DEFAULT_DAYS = 30


class ReportRowAnswer(Answer):
    key: str = Field(description="the period's first day (UTC), model, plan or account id")
    email: str | None = Field(default=None, description="group_by=account: the account's email")
    requests: int
    tokens: int
    tokens_by_meter: Meters
    revenue_usd: Money
    upstream_cost_usd: Money
    margin_usd: Money
    unpriced_requests: int = Field(description="settled before list costs were recorded")
    active_accounts: int | None = Field(description="accounts with a request (not in totals)")
    new_accounts: int | None = Field(description="sign-ups (day, week and month groupings)")
    plan_sales_usd: Money
    deposits_usd: dict[str, Money] = Field(description="credited less reversed, by asset")


class ReportAnswer(Answer):
    group_by: Grouping
    from_: datetime = Field(alias="from")
    to: datetime
    data: list[ReportRowAnswer]
    totals: ReportRowAnswer


def report_query(params: Mapping[str, str], now: datetime) -> UsageReportQuery:
    """``?from=&to=&group_by=``: dates (a ``to`` date is included whole) or date-times; by
    default the last 30 UTC days, today included, by day."""
    group_by = params.get("group_by", "day")
    if group_by not in GROUPINGS:
        raise InvalidRequest("group_by is one of " + ", ".join(GROUPINGS))
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    raw_from, raw_to = params.get("from"), params.get("to")
    since = (
        moment(raw_from, "from", end_of_day=False)
        if raw_from
        else today - timedelta(days=DEFAULT_DAYS - 1)
    )
    until = moment(raw_to, "to", end_of_day=True) if raw_to else today + timedelta(days=1)
    if until <= since:
        raise InvalidRequest("to must be after from")
    if until - since > timedelta(days=MAX_DAYS):
        raise InvalidRequest(f"a report covers at most {MAX_DAYS} days")
    return UsageReportQuery(since=since, until=until, group_by=group_by)


def _tokens(m: Meters) -> int:
    return (
        m.input_tokens
        + m.output_tokens
        + m.cache_read_tokens
        + m.cache_write_5m_tokens
        + m.cache_write_1h_tokens
    )


def _row(group: Group, new_accounts: int | None, email: str | None) -> ReportRowAnswer:
    return ReportRowAnswer(
        key=group.key,
        email=email,
        requests=group.requests,
        tokens=_tokens(group.meters),
        tokens_by_meter=group.meters,
        revenue_usd=group.revenue,
        upstream_cost_usd=group.upstream_cost,
        margin_usd=group.revenue - group.upstream_cost,
        unpriced_requests=group.unpriced_requests,
        active_accounts=group.active_accounts,
        new_accounts=new_accounts,
        plan_sales_usd=group.plan_sales,
        deposits_usd=dict(sorted(group.deposits.items())),
    )


def _sum(groups: Iterable[Group]) -> Group:
    total = Group(key="total")
    meters: dict[str, int] = dict.fromkeys(Meters.model_fields, 0)
    deposits: dict[str, int] = {}
    requests = revenue = upstream = unpriced = plan_sales = 0
    for g in groups:
        requests += g.requests
        revenue += g.revenue
        upstream += g.upstream_cost
        unpriced += g.unpriced_requests
        plan_sales += g.plan_sales
        for name in meters:
            meters[name] += getattr(g.meters, name)
        for asset, usd in g.deposits.items():
            deposits[asset] = deposits.get(asset, 0) + usd
    return total.model_copy(
        update={
            "requests": requests,
            "meters": Meters(**meters),
            "revenue": revenue,
            "upstream_cost": upstream,
            "unpriced_requests": unpriced,
            "plan_sales": plan_sales,
            "deposits": deposits,
        }
    )


def report_answer(
    query: UsageReportQuery,
    groups: list[Group],
    sign_ups: Mapping[str, int],
    emails: Mapping[str, str],
) -> ReportAnswer:
    """Billing's groups with the sign-ups of each period (a period with sign-ups and nothing
    else is a row too) and, by account, each account's email."""
    timed = query.group_by in TIME_GROUPINGS
    by_key = {g.key: g for g in groups}
    for key in sign_ups if timed else ():
        by_key.setdefault(key, Group(key=key))
    rows = [
        _row(by_key[k], sign_ups.get(k, 0) if timed else None, emails.get(k))
        for k in sorted(by_key)
    ]
    total = _row(_sum(by_key.values()), sum(sign_ups.values()) if timed else None, None)
    total = total.model_copy(update={"active_accounts": None})
    return ReportAnswer.model_validate(
        {
            "group_by": query.group_by,
            "from": query.since,
            "to": query.until,
            "data": rows,
            "totals": total,
        }
    )


_METERS = tuple(Meters.model_fields)


def csv_table(report: ReportAnswer) -> list[list[str]]:
    """The report as CSV rows, the header first and the totals last; one deposits column per
    asset that appears."""
    assets = sorted({a for row in [*report.data, report.totals] for a in row.deposits_usd})
    header = [
        report.group_by if report.group_by != "account" else "account_id",
        *(["email"] if report.group_by == "account" else []),
        "requests", "tokens", *_METERS, "revenue_usd", "upstream_cost_usd", "margin_usd",
        "unpriced_requests", "active_accounts", "new_accounts", "plan_sales_usd",
        *(f"deposits_{asset}_usd" for asset in assets),
    ]  # fmt: skip

    def cells(row: ReportRowAnswer) -> list[str]:
        def count(value: int | None) -> str:
            return "" if value is None else str(value)

        return [
            row.key,
            *([row.email or ""] if report.group_by == "account" else []),
            str(row.requests), str(row.tokens),
            *(str(getattr(row.tokens_by_meter, m)) for m in _METERS),
            format_usd(row.revenue_usd), format_usd(row.upstream_cost_usd),
            format_usd(row.margin_usd), str(row.unpriced_requests),
            count(row.active_accounts), count(row.new_accounts), format_usd(row.plan_sales_usd),
            *(format_usd(row.deposits_usd.get(asset, 0)) for asset in assets),
        ]  # fmt: skip

    return [header, *(cells(row) for row in report.data), cells(report.totals)]
