"""The operator console's sign-in and shell, on the operator listener (``/admin/``).

Built from the dashboard's parts: the same renderer, templates and stylesheet (the console's
templates extend ``base.html``), the same form reading and pre-session double-submit token for
the sign-in form, the same sign-in throttling. The session cookie is the operator's own
(``aiapi_operator``: HttpOnly, SameSite=Strict, Secure unless ``AIAPI_COOKIE_SECURE=false``,
sent only under ``/admin``).

**Adding a console page**: add ``(method, path, handler)`` to :data:`PAGES` (and a
``(href, key, label)`` to :data:`NAV` to list it). The handler is ``async (request, console)``;
it needs no check of its own: the gate (:mod:`aiapi_accounts.operators.gate`) lets only a
signed-in operator reach it (else redirects to sign-in), checks every form's ``csrf_token`` and
refuses a support operator's POST before the handler runs. The handler gets the operator with
``acting(request)`` and renders with ``console.show(request, template, active, **values)``;
its template extends ``console/base.html`` and puts ``<input type="hidden" name="csrf_token"
value="{{ csrf }}">`` in each form (and a ``reason`` field on forms that change something).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.http import acting, client_address, context
from aiapi_accounts.operators.gate import OPERATOR_COOKIE, SIGN_IN_PATH
from aiapi_accounts.pages import console_accounts, console_reports
from aiapi_accounts.pages.forms import read_form
from aiapi_accounts.pages.guard import anonymous_form_ok
from aiapi_accounts.pages.render import Renderer
from aiapi_accounts.pages.routes import static_files, table_routes
from aiapi_accounts.pages.view import Pages, local_path, see_other

HOME = "/admin/"
COOKIE_PATH = "/admin"
_EXPIRED = "This form had expired; please try again."

# The console's navigation, in order: (href, key, label). Console pages add theirs here.
NAV: list[tuple[str, str, str]] = [
    (HOME, "home", "Home"),
    ("/admin/accounts", "accounts", "Accounts"),
    ("/admin/reports", "reports", "Reports"),
    ("/admin/live", "live", "Live"),
]


class Console:
    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.pages = Pages(renderer)  # the dashboard's anonymous-form helpers

    def show(
        self, request: Request, template: str, active: str, status: int = 200, **values: Any
    ) -> Response:
        """A signed-in console page: the operator, the CSRF token of its forms, the navigation."""
        me = acting(request)
        return self.renderer.page(
            template,
            {
                "me": me.operator,
                "csrf": me.session.csrf_token if me.session else "",
                "nav": NAV,
                "active": active,
                "path": request.url.path,
                "unverified": False,
                "error": None,
                "notice": None,
                **values,
            },
            status,
        )

    def refusal(self, request: Request, error: AccountsError) -> Response:
        """The gate's refusal of a console page (a support operator's form post, a forged one)."""
        response = self.show(
            request, "console/refused.html", "", error.status, message=error.message
        )
        response.headers.update(error.headers)
        return response


def _target(raw: str | None) -> str:
    target = local_path(raw, HOME)
    return target if target.startswith(COOKIE_PATH) else HOME


async def sign_in_page(request: Request, console: Console) -> Response:
    return console.pages.show_anonymous(
        request,
        "console/sign_in.html",
        next=_target(request.query_params.get("next")),
        email="",
    )


async def sign_in(request: Request, console: Console) -> Response:
    form = await read_form(request)
    target = _target(form.get("next"))
    email = form.get("email", "")[:254]

    def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
        response = console.pages.show_anonymous(
            request, "console/sign_in.html", status, next=target, email=email, error=error
        )
        response.headers.update(headers or {})
        return response

    if not anonymous_form_ok(request, form):
        return again(403, _EXPIRED)
    ctx = context(request)
    try:
        signed = await ctx.operators.sign_in(
            email,
            form.get("password", ""),
            client_address(request),
            request.headers.get("user-agent", ""),
        )
    except AccountsError as exc:
        return again(exc.status, exc.message, exc.headers)
    response = see_other(target)
    response.set_cookie(
        OPERATOR_COOKIE,
        signed.cookie,
        max_age=ctx.operators.session_ttl_s,
        path=COOKIE_PATH,
        httponly=True,
        secure=ctx.settings.cookie_secure,
        samesite="strict",
    )
    return response


async def sign_out(request: Request, console: Console) -> Response:
    me = acting(request)
    if me.session is not None:
        await context(request).operators.sign_out(me.session.id)
    response = see_other(SIGN_IN_PATH)
    response.delete_cookie(
        OPERATOR_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        secure=context(request).settings.cookie_secure,
        samesite="strict",
    )
    return response


async def home(request: Request, console: Console) -> Response:
    return console.show(request, "console/home.html", "home")


async def to_home(request: Request, console: Console) -> Response:
    return see_other(HOME)


ConsoleHandler = Callable[[Request, Console], Awaitable[Response]]

PAGES: list[tuple[str, str, ConsoleHandler]] = [
    ("GET", "/", to_home),
    ("GET", HOME, home),
    ("GET", SIGN_IN_PATH, sign_in_page),
    ("POST", SIGN_IN_PATH, sign_in),
    ("POST", "/admin/sign-out", sign_out),
    ("GET", "/admin/accounts", console_accounts.accounts_page),
    ("GET", "/admin/accounts/{account_id}", console_accounts.account_page),
    ("POST", "/admin/accounts/{account_id}/adjust", console_accounts.adjust_balance),
    ("GET", "/admin/reports", console_reports.reports_page),
    ("GET", "/admin/live", console_reports.live_page),
]


def console_routes(console: Console) -> list[BaseRoute]:
    return [*table_routes(PAGES, console), static_files()]
