"""The usage page: charts per day by model and by key, the per-request log with its filters and
pages, a CSV link for the same filters, and a lookup by request-id."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiapi_shared.billing_api import DailyUsageQuery, RequestRecordReply
from aiapi_shared.events import Usage
from aiapi_shared.money import format_usd
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError, PeerRefused
from aiapi_accounts.http import context
from aiapi_accounts.pages.charts import day_range, series_by, stacked_bars
from aiapi_accounts.pages.view import Pages
from aiapi_accounts.request_filter import encode_cursor, list_query

PAGE_SIZE = 50
RANGES = (30, 90, 366)
_FILTERS = ("key_id", "model", "from", "to")


def usd_text(nano: int) -> str:
    return f"{format_usd(nano)} USD"


def tokens_text(count: int) -> str:
    return f"{count:,} tokens"


async def usage_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    ctx = context(request)
    params = request.query_params
    days = int(params["days"]) if params.get("days", "").isdigit() else 90
    days = days if days in RANGES else 90
    filters = {name: params[name] for name in _FILTERS if params.get(name)}
    keys = await ctx.accounts.list_keys(me.account.id)
    names = {k.id: k.name for k in keys}
    error = None
    charts = []
    records = []
    next_link = None
    found: RequestRecordReply | None = None
    looked_for = params.get("request_id", "").strip()[:200]
    try:
        if looked_for:
            try:
                found = await ctx.peers.request_record(me.account.id, looked_for)
            except PeerRefused as exc:
                if exc.status != 404:
                    raise
        query = list_query(
            me.account.id,
            {**filters, **({"cursor": params["cursor"]} if params.get("cursor") else {})},
            limit=PAGE_SIZE,
        )
        # Two independent questions to billing: asked at once, answered in one round trip.
        daily, page = await asyncio.gather(
            ctx.peers.daily_key_usage(DailyUsageQuery(account_id=me.account.id, days=days)),
            ctx.peers.request_list(query),
        )
        span = day_range(datetime.now(UTC).date(), days)
        rows = daily.rows
        charts = [
            stacked_bars("Cost per day by model", span,
                         series_by(((r.day, r.model, r.cost) for r in rows), span), usd_text),
            stacked_bars("Tokens per day by model", span,
                         series_by(((r.day, r.model, _tokens(r.usage)) for r in rows), span),
                         tokens_text),
            stacked_bars("Cost per day by key", span,
                         series_by(((r.day, names.get(r.key_id, r.key_id), r.cost) for r in rows),
                                   span), usd_text),
        ]  # fmt: skip
        records = page.records
        if page.more:
            next_link = "/usage?" + urlencode(
                {**filters, "days": days, "cursor": encode_cursor(records[-1])}
            )
    except AccountsError as exc:
        error = exc.message
    models = [m.id for m in ctx.catalogue.current.models]
    return pages.show(
        request, "usage.html", me, "usage", 400 if error and not charts else 200,
        charts=charts, records=records, names=names, keys=keys, models=models, filters=filters,
        days=days, ranges=RANGES, next_link=next_link, error=error,
        csv_link="/api/v1/account/requests?" + urlencode({**filters, "format": "csv"}),
        looked_for=looked_for, found=found, not_found=bool(looked_for) and found is None and not error,
    )  # fmt: skip


def _tokens(usage: Usage) -> int:
    """Every metered token (thinking tokens are already part of the output)."""
    return (
        usage.input_tokens
        + usage.output_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_5m_input_tokens
        + usage.cache_creation_1h_input_tokens
    )
