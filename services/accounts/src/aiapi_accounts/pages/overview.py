"""The overview (balance, holds, plan and limits, spend, quick start) and the plan page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiapi_shared.billing_api import DailyUsageQuery
from aiapi_shared.money import owed
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError, PeerUnavailable
from aiapi_accounts.http import context
from aiapi_accounts.pages.render import usd
from aiapi_accounts.pages.snippets import base_urls, quick_starts
from aiapi_accounts.pages.spend import days_back_to_month_start, spend_of
from aiapi_accounts.pages.view import Pages, Viewer


def edge_url(request: Request) -> str:
    """The edge's public base URL: the setting, else this host on the edge's port."""
    settings = context(request).settings
    if settings.public_edge_url:
        return settings.public_edge_url.rstrip("/")
    host = request.url.hostname or "127.0.0.1"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{request.url.scheme}://{host}:{settings.edge_port}"


def example_model(request: Request) -> str:
    models = [m.id for m in context(request).catalogue.current.models]
    return next((m for m in models if "sonnet" in m), models[0] if models else "claude")


async def overview_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    ctx = context(request)
    today = datetime.now(UTC).date()
    balance = spend = None
    try:
        # Independent questions to billing: asked at once, one round trip's wait.
        balance, usage = await asyncio.gather(
            ctx.peers.balance(me.account.id),
            ctx.peers.daily_key_usage(
                DailyUsageQuery(account_id=me.account.id, days=days_back_to_month_start(today))
            ),
        )
        spend = spend_of(usage.rows, today)
    except PeerUnavailable:
        pass  # the page says billing is unreachable instead of showing numbers
    # The account's terms now: its plan's, with its own limits or discount when it has them.
    terms = ctx.catalogue.current.terms(me.account.plan, me.account.id, datetime.now(UTC))
    url = edge_url(request)
    return pages.show(
        request,
        "overview.html",
        me,
        "overview",
        balance=balance,
        owed=None if balance is None else owed(balance.balance),
        spend=spend,
        terms=terms,
        choosable=any(p.id != me.account.plan for p in ctx.catalogue.choosable()),
        today=today,
        urls=base_urls(url),
        snippets=quick_starts(url, model=example_model(request)),
    )


async def plan_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    return _plan(request, pages, me)


def _plan(
    request: Request,
    pages: Pages,
    me: Viewer,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    view = context(request).catalogue
    offered = view.choosable()
    current = view.plan(me.account.plan)
    shown = offered if current is None or current in offered else (current, *offered)
    return pages.show(
        request,
        "plan.html",
        me,
        "plan",
        status,
        plans=shown,
        choosable={p.id for p in offered},
        error=error,
        notice=notice,
    )


async def upgrade(request: Request, pages: Pages) -> Response:
    """A plan customers may choose is bought once from the balance at its one-time price
    (billing debits it, then the plan switches), like ``POST /api/v1/account/plan``."""
    checked = await pages.signed_in_form(request, change=True)
    if isinstance(checked, Response):
        return checked
    me, form = checked
    if me.account.status != "active":
        return _plan(request, pages, me, error="The account is suspended.", status=403)
    ctx = context(request)
    try:
        plan = ctx.catalogue.choosable_plan(form.get("plan", "pro"))
        reply = await ctx.peers.purchase_plan(me.account.id, plan.id)
        account = await ctx.accounts.set_plan(me.account.id, plan.id)
    except AccountsError as exc:
        message = exc.message
        if exc.status == 402:
            message = f"{exc.message} Top up first, then upgrade."
        return _plan(request, pages, me, error=message, status=exc.status)
    notice = (
        f"You already owned {plan.display_name}; nothing was charged."
        if reply.already_owned
        else f"Now on {plan.display_name}: {usd(reply.price)} USD was charged from the balance,"
        f" which is now {usd(reply.balance)} USD."
    )
    return _plan(request, pages, Viewer(account, me.session), notice=notice)
