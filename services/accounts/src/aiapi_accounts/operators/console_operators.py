"""The console's operators pages (``/admin/operators``) and the audit log (``/admin/audit``).

Everyone signed in sees them; only an admin's forms go through (the gate refuses a support
operator's post with the 403 page before a handler runs). Each action is the operator API's
(``/admin/v1/operators``, ``/admin/v1/audit``, the same bodies and service) and an ``aiapi
admin operators|tokens|audit`` command. A new token is shown once, in the answer to its form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.http import acting, build, context
from aiapi_accounts.operators.audit import encode_cursor
from aiapi_accounts.operators.console_forms import change_form, done_notice, kept
from aiapi_accounts.operators.repository import AuditFilter
from aiapi_accounts.operators.routes import audit_filter
from aiapi_accounts.operators.schemas import CreateOperatorBody, CreateTokenBody
from aiapi_accounts.pages.view import see_other

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


async def operators_page(request: Request, console: Console) -> Response:
    return await _operators(request, console, notice=done_notice(request, _DONE))


async def _operators(
    request: Request,
    console: Console,
    status: int = 200,
    *,
    error: str | None = None,
    notice: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    found = await context(request).operators.all()
    return console.show(
        request, "console/operators.html", ACTIVE, status,
        operators=found, error=error, notice=notice, form=kept(form, _KEPT),
    )  # fmt: skip


async def create_operator(request: Request, console: Console) -> Response:
    form: dict[str, str] = {}
    try:
        form = await change_form(request)
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
    except AccountsError as exc:
        return await _operators(request, console, exc.status, error=exc.message, form=form)
    return see_other(f"{PATH}/{created.id}?done=created")


async def operator_page(request: Request, console: Console) -> Response:
    return await _operator(request, console, notice=done_notice(request, _DONE))


async def _operator(
    request: Request, console: Console, status: int = 200, **values: Any
) -> Response:
    operators = context(request).operators
    operator_id = request.path_params["operator_id"]
    try:
        found = await operators.get(operator_id)
        tokens = await operators.tokens(operator_id)
    except AccountsError as exc:
        return console.show(
            request, "console/missing.html", ACTIVE, exc.status, message=exc.message
        )
    defaults: dict[str, Any] = {"error": None, "notice": None, "created": None}
    return console.show(
        request, "console/operator.html", ACTIVE, status,
        operator=found, tokens=tokens, **{**defaults, **values},
    )  # fmt: skip


async def switch_operator(request: Request, console: Console) -> Response:
    """Disable or enable (the form's ``disabled`` is ``true`` or ``false``)."""
    operator_id = request.path_params["operator_id"]
    try:
        form = await change_form(request)
        disabled = form.get("disabled") == "true"
        await context(request).operators.change(
            operator_id, disabled=disabled, role=None, password=None
        )
    except AccountsError as exc:
        return await _operator(request, console, exc.status, error=exc.message)
    done = "disabled" if disabled else "enabled"
    return see_other(f"{PATH}/{operator_id}?done={done}")


async def create_token(request: Request, console: Console) -> Response:
    try:
        form = await change_form(request)
        body = build(CreateTokenBody, name=form.get("name", "").strip())
        issued = await context(request).operators.issue_token(
            request.path_params["operator_id"], body.name
        )
    except AccountsError as exc:
        return await _operator(request, console, exc.status, error=exc.message)
    # Answered directly (no redirect): the token is in this one answer and nowhere else.
    return await _operator(request, console, 201, created=(issued.token.name, issued.secret))


async def revoke_token(request: Request, console: Console) -> Response:
    operator_id = request.path_params["operator_id"]
    try:
        await change_form(request)
        await context(request).operators.revoke_token(operator_id, request.path_params["token_id"])
    except AccountsError as exc:
        return await _operator(request, console, exc.status, error=exc.message)
    return see_other(f"{PATH}/{operator_id}?done=revoked")


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
