"""The usage page: charts per day by model and by key, the per-request log with its filters and
pages, a CSV link for the same filters, and a lookup by request-id."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from aiapi_shared.billing_api import DailyUsageQuery, RequestRecordReply, UsageSeriesReply
from aiapi_shared.money import format_usd
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError, PeerRefused
from aiapi_accounts.http import context
from aiapi_accounts.pages.charts import Chart, stacked_by_day
from aiapi_accounts.pages.view import Pages
from aiapi_accounts.request_filter import encode_cursor, list_query

PAGE_SIZE = 50
RANGES = (30, 90, 366)
_FILTERS = ("key_id", "model", "from", "to")


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
    charts: list[Chart] = []
    records = []
    next_link = None
    found: RequestRecordReply | None = None
    looked_for = params.get("request_id", "").strip()[:200]

    async def look_up() -> RequestRecordReply | None:
        if not looked_for:
            return None
        try:
            return await ctx.peers.request_record(me.account.id, looked_for)
        except PeerRefused as exc:
            if exc.status != 404:
                raise
            return None

    try:
        query = list_query(
            me.account.id,
            {**filters, **({"cursor": params["cursor"]} if params.get("cursor") else {})},
            limit=PAGE_SIZE,
        )
        # Independent questions to billing: asked at once, answered in one round trip's wait.
        found, series, page = await asyncio.gather(
            look_up(),
            ctx.peers.usage_series(DailyUsageQuery(account_id=me.account.id, days=days)),
            ctx.peers.request_list(query),
        )
        charts = usage_charts(series, names)
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


def usage_charts(reply: UsageSeriesReply, key_names: dict[str, str]) -> list[Chart]:
    """Cost and tokens per day, by model and by key (a key by its name; a deleted one by id)."""
    first = reply.first_day
    models, keys = reply.by_model, reply.by_key
    return [
        stacked_by_day("cost-by-model", "Cost per day by model", "USD", first,
                       ((s.name, s.cost) for s in models), format_usd),
        stacked_by_day("tokens-by-model", "Tokens per day by model", "tokens", first,
                       ((s.name, s.tokens) for s in models), str),
        stacked_by_day("cost-by-key", "Cost per day by key", "USD", first,
                       ((key_names.get(s.name, s.name), s.cost) for s in keys), format_usd),
        stacked_by_day("tokens-by-key", "Tokens per day by key", "tokens", first,
                       ((key_names.get(s.name, s.name), s.tokens) for s in keys), str),
    ]  # fmt: skip
