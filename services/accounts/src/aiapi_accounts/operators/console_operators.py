"""The console's operators pages (``/admin/operators``) and the audit log (``/admin/audit``).

Everyone signed in sees them; only an admin's forms go through (the gate refuses a support
operator's post with the 403 page before a handler runs). Each action is the operator API's
(``/admin/v1/operators``, ``/admin/v1/audit``, the same bodies and service) and an ``aiapi
admin operators|tokens|audit`` command. A new token is shown once, in the answer to its form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.http import acting, build, context
from aiapi_accounts.operators.audit import encode_cursor
from aiapi_accounts.operators.console_forms import FormPage
from aiapi_accounts.operators.repository import AuditFilter
from aiapi_accounts.operators.routes import audit_filter
from aiapi_accounts.operators.schemas import CreateOperatorBody, CreateTokenBody

if TYPE_CHECKING:  # the console's table imports this module
    from aiapi_accounts.operators.console import Console

PATH = "/admin/operators"
AUDIT_PATH = "/admin/audit"
ACTIVE = "operators"
AUDIT_ACTIVE = "audit"
AUDIT_PAGE = 50
_FILTERS = ("account_id", "operator", "from", "to")
_KEPT = ("name", "email", "role")
_DONE = {
    "created": "Created the operator.",
    "disabled": "Disabled: its console sessions ended and its tokens stopped.",
    "enabled": "Enabled: its tokens work again.",
    "revoked": "Revoked the token: it stopped working.",
}


async def _operators(request: Request) -> dict[str, object]:
    return {"operators": await context(request).operators.all()}


async def _operator(request: Request) -> dict[str, object]:
    operators = context(request).operators
    operator_id = request.path_params["operator_id"]
    return {
        "operator": await operators.get(operator_id),
        "tokens": await operators.tokens(operator_id),
    }


LIST = FormPage("console/operators.html", ACTIVE, _operators, _DONE, _KEPT)
ONE = FormPage("console/operator.html", ACTIVE, _operator, _DONE, defaults={"created": None})


async def operators_page(request: Request, console: Console) -> Response:
    return await LIST.page(request, console)


async def create_operator(request: Request, console: Console) -> Response:
    async def create(form: dict[str, str]) -> str:
        body = build(
            CreateOperatorBody,
            name=form.get("name", "").strip(),
            email=form.get("email", "").strip(),
            role=form.get("role", ""),
            password=form.get("password") or None,
        )
        created = await context(request).operators.create(
            body.name, body.email, body.role, body.password, acting(request).operator
        )
        return f"{PATH}/{created.id}?done=created"

    return await LIST.change(request, console, create)


async def operator_page(request: Request, console: Console) -> Response:
    return await ONE.page(request, console)


async def switch_operator(request: Request, console: Console) -> Response:
    """Disable or enable (the form's ``disabled`` is ``true`` or ``false``)."""
    operator_id = request.path_params["operator_id"]

    async def switch(form: dict[str, str]) -> str:
        disabled = form.get("disabled") == "true"
        await context(request).operators.change(
            operator_id, disabled=disabled, role=None, password=None
        )
        done = "disabled" if disabled else "enabled"
        return f"{PATH}/{operator_id}?done={done}"

    return await ONE.change(request, console, switch)


async def create_token(request: Request, console: Console) -> Response:
    async def issue(form: dict[str, str]) -> Response:
        body = build(CreateTokenBody, name=form.get("name", "").strip())
        issued = await context(request).operators.issue_token(
            request.path_params["operator_id"], body.name
        )
        # Answered directly (no redirect): the token is in this one answer and nowhere else.
        return await ONE.show(request, console, 201, created=(issued.token.name, issued.secret))

    return await ONE.change(request, console, issue)


async def revoke_token(request: Request, console: Console) -> Response:
    operator_id = request.path_params["operator_id"]

    async def revoke(form: dict[str, str]) -> str:
        await context(request).operators.revoke_token(operator_id, request.path_params["token_id"])
        return f"{PATH}/{operator_id}?done=revoked"

    return await ONE.change(request, console, revoke)


async def audit_page(request: Request, console: Console) -> Response:
    """The log, newest first, filtered as ``GET /admin/v1/audit`` is (the same query)."""
    params = {name: request.query_params.get(name, "").strip() for name in _FILTERS}
    query = {**params, "limit": str(AUDIT_PAGE), "cursor": request.query_params.get("cursor", "")}
    try:
        where = audit_filter(query)
        found = await context(request).operators.audit(
            AuditFilter(**{**where.__dict__, "limit": where.limit + 1})
        )
    except AccountsError as exc:
        return console.show(
            request, "console/audit.html", AUDIT_ACTIVE, exc.status,
            entries=[], filters=params, older=None, error=exc.message,
        )  # fmt: skip
    entries = found[:AUDIT_PAGE]
    older = None
    if len(found) > AUDIT_PAGE:
        given = {k: v for k, v in params.items() if v}
        older = AUDIT_PATH + "?" + urlencode({**given, "cursor": encode_cursor(entries[-1].id)})
    return console.show(
        request, "console/audit.html", AUDIT_ACTIVE,
        entries=entries, filters=params, older=older,
    )  # fmt: skip


PAGES = [
    ("GET", PATH, operators_page),
    ("POST", PATH, create_operator),
    ("GET", PATH + "/{operator_id}", operator_page),
    ("POST", PATH + "/{operator_id}/enabled", switch_operator),
    ("POST", PATH + "/{operator_id}/tokens", create_token),
    ("POST", PATH + "/{operator_id}/tokens/{token_id}/revoke", revoke_token),
    ("GET", AUDIT_PATH, audit_page),
]
NAV = [(PATH, ACTIVE, "Operators"), (AUDIT_PATH, AUDIT_ACTIVE, "Audit log")]
