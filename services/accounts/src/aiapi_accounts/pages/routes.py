"""The dashboard's route table (pages and their static files); mounted by the app at ``/``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from aiapi_accounts.pages import auth, billing, keys, mail, overview, topup, usage
from aiapi_accounts.pages.render import Renderer
from aiapi_accounts.pages.view import Pages

PageHandler = Callable[[Request, Pages], Awaitable[Response]]
T = TypeVar("T")

_TABLE: tuple[tuple[str, str, PageHandler], ...] = (
    ("GET", "/", overview.overview_page),
    ("GET", "/sign-in", auth.sign_in_page),
    ("POST", "/sign-in", auth.sign_in),
    ("GET", "/sign-up", auth.sign_up_page),
    ("POST", "/sign-up", auth.sign_up),
    ("POST", "/sign-out", auth.sign_out),
    ("GET", "/account", auth.account_page),
    ("POST", "/account/password", auth.change_password),
    ("POST", "/account/sessions/{session_id}/end", auth.end_session),
    ("POST", "/account/verify-email", mail.resend_verification),
    ("GET", "/verify-email", mail.verify_email),
    ("GET", "/forgot-password", mail.forgot_page),
    ("POST", "/forgot-password", mail.forgot),
    ("GET", "/reset-password", mail.reset_page),
    ("POST", "/reset-password", mail.reset),
    ("GET", "/plan", overview.plan_page),
    ("POST", "/plan", overview.upgrade),
    ("GET", "/keys", keys.keys_page),
    ("POST", "/keys", keys.create_key),
    ("GET", "/keys/{key_id}/revoke", keys.revoke_page),
    ("POST", "/keys/{key_id}/revoke", keys.revoke_key),
    ("GET", "/top-up", topup.top_up_page),
    ("GET", "/usage", usage.usage_page),
    ("GET", "/billing", billing.billing_page),
)


def page_routes() -> list[BaseRoute]:
    return [*table_routes(_TABLE, Pages(Renderer())), static_files()]


def table_routes(
    table: Iterable[tuple[str, str, Callable[[Request, T], Awaitable[Response]]]], shared: T
) -> list[BaseRoute]:
    """One route per path, dispatching on the method to ``handler(request, shared)`` (HEAD is
    answered as GET). The dashboard's and the operator console's tables are built alike."""
    by_path: dict[str, dict[str, Callable[[Request, T], Awaitable[Response]]]] = {}
    for method, path, handler in table:
        by_path.setdefault(path, {})[method] = handler
    routes: list[BaseRoute] = []
    for path, methods in by_path.items():

        async def dispatch(
            request: Request,
            methods: dict[str, Callable[[Request, T], Awaitable[Response]]] = methods,
        ) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await methods[method](request, shared)

        routes.append(Route(path, dispatch, methods=list(methods)))
    return routes


def static_files() -> Mount:
    """The stylesheet and script, at ``/static`` (the dashboard and the console share them)."""
    return Mount(
        "/static", StaticFiles(packages=[("aiapi_accounts", "pages/static")]), name="static"
    )
