"""The console's business pages: the report (``/admin/reports``, with its chart and a CSV link
for what is shown) and the live view (``/admin/live``, reloaded every few seconds).

They show what ``GET /admin/v1/reports/usage`` and ``GET /admin/v1/live`` answer, through the
same functions (``routes_reports``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiapi_shared.money import format_usd
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.pages.charts import Chart, stacked_by_day
from aiapi_accounts.routes_reports import build_report, live_figures
from aiapi_accounts.usage_report import GROUPINGS, ReportAnswer

if TYPE_CHECKING:  # the console's module lists these pages: no import cycle at run time
    from aiapi_accounts.operators.console import Console

LIVE_REFRESH_S = 5
_REPORT_PARAMS = ("from", "to", "group_by")


async def reports_page(request: Request, console: Console) -> Response:
    params = request.query_params
    kept = {name: params[name] for name in _REPORT_PARAMS if params.get(name)}
    try:
        report = await build_report(request)
    except AccountsError as exc:
        return console.show(
            request, "console/reports.html", "reports", exc.status,
            report=None, chart=None, kept=kept, groupings=GROUPINGS, csv_link=None,
            error=exc.message,
        )  # fmt: skip
    # The link asks for exactly the period shown (the defaults resolved), as CSV.
    shown = {
        "from": report.from_.isoformat(),
        "to": report.to.isoformat(),
        "group_by": report.group_by,
        "format": "csv",
    }
    # The form shows the period asked for, the defaults resolved (the last day included).
    last = report.to - timedelta(microseconds=1)
    dates = {"from": report.from_.date().isoformat(), "to": last.date().isoformat()}
    return console.show(
        request, "console/reports.html", "reports",
        report=report, chart=margin_chart(report), kept={**dates, **kept},
        groupings=GROUPINGS, csv_link="/admin/v1/reports/usage?" + urlencode(shown),
    )  # fmt: skip


def margin_chart(report: ReportAnswer) -> Chart | None:
    """Revenue per period as a bar split into upstream cost and margin (a loss shows as cost
    alone, the table says by how much); by day only (the chart's axis speaks of days)."""
    if report.group_by != "day" or not report.data:
        return None
    by_day = {date.fromisoformat(row.key): row for row in report.data}
    first, last = min(by_day), max(by_day)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    rows = [by_day.get(day) for day in days]  # a day without usage is an empty bar
    upstream = [0 if r is None else min(r.upstream_cost_usd, r.revenue_usd) for r in rows]
    margin = [0 if r is None else max(r.margin_usd, 0) for r in rows]
    return stacked_by_day(
        "revenue-by-day",
        "Revenue per day: upstream cost and margin",
        "USD",
        first,
        [("upstream cost", upstream), ("margin", margin)],
        format_usd,
    )


async def live_page(request: Request, console: Console) -> Response:
    figures = await live_figures(request)
    return console.show(
        request, "console/live.html", "live", live=figures, refresh_s=LIVE_REFRESH_S
    )
