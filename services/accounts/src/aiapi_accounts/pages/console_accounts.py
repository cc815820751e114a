"""The console's account pages: the search (``/admin/accounts``) and one account
(``/admin/accounts/{account_id}``) with the form that credits or debits its balance.

They show what the operator API answers (``routes_search``), through the same functions; the
account's charts and request log are the customer's own (``pages.usage``). The gate in front of
the listener lets only a signed-in operator in, checks each form's CSRF token, refuses a support
operator's form and writes the audit entry of every post (the ``{account_id}`` in the path
files it under the account).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiapi_shared.billing_api import AdjustCommand, DailyUsageQuery, RequestListReply
from aiapi_shared.console_api import SPEND_DAYS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError, NotFound
from aiapi_accounts.http import acting, context
from aiapi_accounts.operators.repository import AuditFilter
from aiapi_accounts.pages.charts import Chart
from aiapi_accounts.pages.forms import read_form
from aiapi_accounts.pages.usage import usage_charts
from aiapi_accounts.pages.view import see_other
from aiapi_accounts.request_filter import encode_cursor, list_query
from aiapi_accounts.routes_search import account_overview, find_accounts
from aiapi_accounts.schemas import AdjustmentBody

if TYPE_CHECKING:  # the console's module lists these pages: no import cycle at run time
    from aiapi_accounts.operators.console import Console

REQUESTS_SHOWN = 50
AUDIT_SHOWN = 50
_LIST_PARAMS = ("q", "sort", "order")


async def accounts_page(request: Request, console: Console) -> Response:
    params = request.query_params
    kept = {name: params[name] for name in _LIST_PARAMS if params.get(name)}
    try:
        found = await find_accounts(request)
    except AccountsError as exc:
        return console.show(
            request, "console/accounts.html", "accounts", exc.status,
            found=None, kept=kept, next_link=None, error=exc.message,
        )  # fmt: skip
    next_link = None
    if found.next_cursor:
        next_link = "/admin/accounts?" + urlencode({**kept, "cursor": found.next_cursor})
    return console.show(
        request, "console/accounts.html", "accounts",
        found=found, kept=kept, next_link=next_link,
    )  # fmt: skip


async def account_page(request: Request, console: Console) -> Response:
    return await _show_account(request, console, request.path_params["account_id"])


async def _show_account(
    request: Request,
    console: Console,
    account_id: str,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    ctx = context(request)
    try:
        seen = await account_overview(request, account_id)
    except NotFound as exc:
        return console.show(request, "console/refused.html", "accounts", 404, message=exc.message)
    names = {k.id: k.name for k in seen.keys}
    charts, requests, audit = await asyncio.gather(
        _charts(request, account_id, names),
        _requests(request, account_id),
        ctx.operators.audit(AuditFilter(account_id=account_id, limit=AUDIT_SHOWN)),
    )
    notice = "The balance was adjusted." if request.query_params.get("adjusted") else None
    return console.show(
        request, "console/account.html", "accounts", status,
        seen=seen, charts=charts, requests=requests, names=names, audit=audit,
        error=error, notice=notice, form=form or {},
        idempotency_key=uuid.uuid4().hex, spend_days=SPEND_DAYS,
        can_write=acting(request).operator.role == "admin",
        csv_link=f"/admin/v1/accounts/{account_id}/requests?format=csv",
        next_link=_next_requests(account_id, requests),
    )  # fmt: skip


async def _charts(request: Request, account_id: str, names: dict[str, str]) -> list[Chart] | None:
    try:
        series = await context(request).peers.usage_series(
            DailyUsageQuery(account_id=account_id, days=SPEND_DAYS)
        )
    except AccountsError:
        return None
    return usage_charts(series, names)


async def _requests(request: Request, account_id: str) -> RequestListReply | None:
    try:
        return await context(request).peers.request_list(
            list_query(account_id, {}, limit=REQUESTS_SHOWN)
        )
    except AccountsError:
        return None


def _next_requests(account_id: str, page: RequestListReply | None) -> str | None:
    """The JSON page after the first (the API's cursor), for an operator who needs more."""
    if page is None or not page.more:
        return None
    cursor = encode_cursor(page.records[-1])
    return f"/admin/v1/accounts/{account_id}/requests?" + urlencode({"cursor": cursor})


async def adjust_balance(request: Request, console: Console) -> Response:
    """Credit (a positive amount) or debit the balance, with the reason the ledger and the audit
    log keep. The form's idempotency key makes a second submission of the same form a replay."""
    account_id = request.path_params["account_id"]
    form = await read_form(request)
    try:
        body = AdjustmentBody(amount_usd=form.get("amount_usd", ""), reason=form.get("reason", ""))
    except ValidationError:
        return await _show_account(
            request, console, account_id, status=400, form=form,
            error="Give an amount in USD such as 10.00 or -2.50, and a reason.",
        )  # fmt: skip
    key = form.get("idempotency_key", "").strip()[:64] or uuid.uuid4().hex
    ctx = context(request)
    try:
        await ctx.accounts.get(account_id)
        await ctx.peers.adjust(
            AdjustCommand(
                account_id=account_id,
                amount=body.amount_usd,
                reason=body.reason,
                idempotency_key=f"admin:{account_id}:{key}",
                actor=acting(request).operator.id,
            )
        )
    except AccountsError as exc:
        return await _show_account(
            request, console, account_id, status=exc.status, form=form, error=exc.message
        )
    return see_other(f"/admin/accounts/{account_id}?adjusted=1")
