"""The console's plans page (``/admin/plans``): every plan as it is now and every version of
its terms, past, current and scheduled; a form to give a plan new terms from a moment on (the
discount, the one-time price, requests and tokens per minute, whether customers may choose it).
The change is the operator API's ``PUT /admin/v1/plans/{name}`` (the same body, forwarded to
billing) and ``aiapi admin plans set``; it reaches admission and every edge within a second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiapi_shared.billing_api import PutPlanCommand
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.http import build, context
from aiapi_accounts.operators.console_forms import FormPage, number
from aiapi_accounts.routes_plans import PlanBody, change_account_terms, plans_answer
from aiapi_accounts.schemas import PatchAccountBody

if TYPE_CHECKING:  # the console's table imports this module
    from aiapi_accounts.operators.console import Console

PATH = "/admin/plans"
ACTIVE = "plans"
_CHOOSABLE = {"": None, "yes": True, "no": False}
_KEPT = ("plan", "discount_percent", "price_usd", "requests_per_minute", "tokens_per_minute",
         "choosable", "effective_from", "account_id", "account_rpm", "account_tpm",
         "account_discount_percent", "account_from")  # fmt: skip


_DONE = {
    "saved": "Saved: admission and every edge apply the plan's terms within a second of their start.",
    "account": "Saved the account's own terms: they apply within a second of their start.",
}


async def _shown(request: Request) -> dict[str, object]:
    shown = plans_answer((await context(request).peers.catalogue()).catalogue)
    return {"plans": shown.plans, "versions": shown.versions}


PAGE = FormPage("console/plans.html", ACTIVE, _shown, _DONE, _KEPT)


async def plans_page(request: Request, console: Console) -> Response:
    """``?account_id=`` fills in the account's terms form (a link from an account's page:
    ``/admin/plans?account_id=ID#account-terms``)."""
    account = {"account_id": request.query_params.get("account_id", "")[:100]}
    return await PAGE.page(request, console, form=account)


def discount_bps(percent: str) -> int | None:
    """ "70" or "12.5" percent off as basis points; None when left empty."""
    percent = percent.strip().rstrip("%").strip()
    if not percent:
        return None
    try:
        bps = Decimal(percent) * 100
    except InvalidOperation:
        raise InvalidRequest("discount: a percentage such as 70 or 12.5") from None
    if bps != bps.to_integral_value() or not 0 <= bps <= 10_000:
        raise InvalidRequest("discount: 0 to 100 percent, in steps of 0.01")
    return int(bps)


def starting(value: str) -> datetime | None:
    """The form's start (a ``datetime-local`` value, in UTC); None: now."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest("effective from: a date and time such as 2027-01-01T00:00") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def change_plan(request: Request, console: Console) -> Response:
    async def put(form: dict[str, str]) -> str:
        if form.get("choosable", "") not in _CHOOSABLE:
            raise InvalidRequest("choosable: yes, no or keep")
        body = build(
            PlanBody,
            effective_from=starting(form.get("effective_from", "")),
            price_usd=form.get("price_usd", "").strip() or None,
            requests_per_minute=number(form.get("requests_per_minute", ""), "requests/min"),
            tokens_per_minute=number(form.get("tokens_per_minute", ""), "tokens/min"),
            discount_bps=discount_bps(form.get("discount_percent", "")),
            choosable=_CHOOSABLE[form.get("choosable", "")],
        )
        command = build(PutPlanCommand, id=form.get("plan", ""), **body.model_dump())
        await context(request).peers.change_catalogue(command)
        return f"{PATH}?done=saved"

    return await PAGE.change(request, console, put)


async def change_account(request: Request, console: Console) -> Response:
    """An account's own limits and discount over its plan's (``PATCH /admin/v1/accounts/{id}``
    with ``limits`` and ``discount_bps``; ``aiapi admin account-terms``). The limits go
    together: one left empty follows the plan's, "plan" in either gives both the plan's again.
    An empty discount keeps the account's; "plan" gives it the plan's again."""

    async def patch(form: dict[str, str]) -> str:
        ctx, account_id = context(request), form.get("account_id", "").strip()
        await ctx.accounts.get(account_id)
        fields: dict[str, object] = {"effective_from": starting(form.get("account_from", ""))}
        rpm = form.get("account_rpm", "").strip()
        tpm = form.get("account_tpm", "").strip()
        if "plan" in (rpm, tpm):
            fields["limits"] = {}  # both limits the plan's again
        elif rpm or tpm:
            fields["limits"] = {
                "requests_per_minute": number(rpm, "requests/min"),
                "tokens_per_minute": number(tpm, "tokens/min"),
            }
        discount = form.get("account_discount_percent", "").strip()
        if discount == "plan":
            fields["discount_bps"] = None  # set to nothing: the plan's again
        elif discount:
            fields["discount_bps"] = discount_bps(discount)
        body = build(PatchAccountBody, **fields)
        if await change_account_terms(ctx, account_id, body) is None:
            raise InvalidRequest("give a limit or a discount")
        query = urlencode({"done": "account", "account_id": account_id})
        return f"{PATH}?{query}#account-terms"

    return await PAGE.change(request, console, patch)


PAGES = [
    ("GET", PATH, plans_page),
    ("POST", PATH, change_plan),
    ("POST", PATH + "/account-terms", change_account),
]
NAV = (PATH, ACTIVE, "Plans")
