"""The business: ``GET /admin/v1/reports/usage`` (JSON or CSV) and ``GET /admin/v1/live``.

Billing totals usage and the ledger's movements (``console_api.USAGE_REPORT_SUBJECT``);
accounts adds the sign-ups of each period and, by account, the emails. The live view reads the
edges' internal ``/metrics`` (``AIAPI_CONSOLE_EDGE_METRICS_URLS``) and billing's last minute;
see ``live_view`` for why those sources.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from aiapi_shared.console_api import TIME_GROUPINGS, LiveQuery, LiveReply
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.directory import directory
from aiapi_accounts.errors import InvalidRequest, PeerUnavailable
from aiapi_accounts.http import acting, answer, context
from aiapi_accounts.live_view import EdgeSample, error_share, parse_edges, per_second
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.schemas import Answer
from aiapi_accounts.usage_report import ReportAnswer, csv_table, report_answer, report_query

SCRAPE_TIMEOUT_S = 2.0
# Rates are measured between two looks at the edges at least this far apart (a page reloaded
# faster shows the rate of the last long enough interval again).
MIN_INTERVAL_S = 2.0


async def build_report(request: Request) -> ReportAnswer:
    """The report the query string asks for (the pages use it too)."""
    ctx = context(request)
    query = report_query(request.query_params, datetime.now(UTC))
    groups = (await ctx.peers.usage_report(query)).rows
    book = directory(request)
    sign_ups: dict[str, int] = {}
    emails: dict[str, str] = {}
    if query.group_by in TIME_GROUPINGS:
        sign_ups = await book.sign_ups(query.since, query.until, query.group_by)
    if query.group_by == "account" and groups:
        found = await book.by_ids([g.key for g in groups])
        emails = {account_id: account.email for account_id, account in found.items()}
    return report_answer(query, groups, sign_ups, emails)


async def usage_report(request: Request) -> Response:
    acting(request)
    kind = request.query_params.get("format", "json")
    if kind not in ("json", "csv"):
        raise InvalidRequest("format is json or csv")
    report = await build_report(request)
    if kind == "json":
        return answer(report)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(csv_table(report))
    name = f"usage-{report.group_by}-{report.from_:%Y%m%d}-{report.to:%Y%m%d}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


class EdgesAnswer(Answer):
    configured: int = Field(description="edges listed in AIAPI_CONSOLE_EDGE_METRICS_URLS")
    answered: int
    sampled_over_s: float | None = Field(description="the interval the rates are measured over")
    requests_per_second: dict[str, float] | None = Field(description="by status class")
    status_share: dict[str, float] | None = Field(description="each class's share, 0..1")
    upstream_errors_per_second: dict[str, float] | None = Field(description="by error class")
    upstream_keys: dict[str, float] = Field(description="upstream keys by health, all edges")
    spool_depth: float = Field(description="usage events spooled and not yet published")
    spool_unwritten: float = Field(description="usage events the spool could not write")


class LiveAnswer(Answer):
    edges: EdgesAnswer
    billing: LiveReply | None = Field(description="null while billing does not answer")


@dataclass(frozen=True)
class _Look:
    at: float
    sample: EdgeSample


@dataclass
class _Memory:
    """The last looks at the edges, kept on the operator app between page loads."""

    previous: _Look | None = None
    latest: _Look | None = None


async def _scrape(urls: list[str]) -> list[str]:
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:

        async def one(url: str) -> str | None:
            try:
                got = await client.get(url)
            except httpx.HTTPError:
                return None
            return got.text if got.status_code == 200 else None

        texts = await asyncio.gather(*(one(url) for url in urls))
    return [t for t in texts if t is not None]


def _remember(request: Request, look: _Look) -> tuple[_Look | None, _Look]:
    """The look to measure against, and the one measured to."""
    state = request.app.state
    memory: _Memory = getattr(state, "live_memory", None) or _Memory()
    state.live_memory = memory
    if memory.latest is None or look.at - memory.latest.at >= MIN_INTERVAL_S:
        memory.previous, memory.latest = memory.latest, look
    return memory.previous, memory.latest or look


async def live(request: Request) -> Response:
    acting(request)
    return answer(await live_figures(request))


async def live_figures(request: Request) -> LiveAnswer:
    """The live view's figures (the console's page uses them too)."""
    ctx = context(request)
    urls = [u.strip() for u in ctx.settings.console_edge_metrics_urls.split(",") if u.strip()]
    texts, billing = await asyncio.gather(_scrape(urls), _billing_live(request))
    now = _Look(time.monotonic(), parse_edges(texts))
    before, after = _remember(request, now)
    rates = errors = None
    interval = None
    if before is not None:
        interval = round(after.at - before.at, 3)
        rates = per_second(
            before.sample.requests_by_class, after.sample.requests_by_class, interval
        )
        errors = per_second(before.sample.upstream_errors, after.sample.upstream_errors, interval)
    edges = EdgesAnswer(
        configured=len(urls),
        answered=len(texts),
        sampled_over_s=interval,
        requests_per_second=rates,
        status_share=error_share(rates) if rates is not None else None,
        upstream_errors_per_second=errors,
        upstream_keys=now.sample.keys_by_health,
        spool_depth=now.sample.spool_depth,
        spool_unwritten=now.sample.spool_unwritten,
    )
    return LiveAnswer(edges=edges, billing=billing)


async def _billing_live(request: Request) -> LiveReply | None:
    try:
        return await context(request).peers.live(LiveQuery())
    except PeerUnavailable:
        return None


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/admin/v1/reports/usage", usage_report,
             "The business per period, model, plan or account (?from=&to=&group_by=day|week|"
             "month|model|plan|account&format=json|csv): requests, tokens by meter, revenue, "
             "upstream list cost, margin, plan sales, deposits by asset, active and new accounts",
             "admin", "operator", None, ReportAnswer, errors=(400, 503)),
    Endpoint("GET", "/admin/v1/live", live,
             "The last minute: requests per second and error classes at the edges, upstream key "
             "health, spool depth, billing's settlement lag and backlog", "admin", "operator",
             None, LiveAnswer),
)  # fmt: skip
