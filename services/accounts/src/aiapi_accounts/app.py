"""The Starlette applications: the customer API on the public port, the operator API on the
admin port (each with its OpenAPI document and docs page), errors mapped in one place.
``create_app`` and ``create_admin_app`` are the only ways to build them; the service is started
and stopped by the runner, not by an app's lifespan. Health and metrics are on neither: they
are on the internal listener (aiapi_shared.probes)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import psycopg
from aiapi_shared.errors import Problem, problem_for_status
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aiapi_accounts import (
    routes_admin,
    routes_catalogue,
    routes_customer,
    routes_mail,
    routes_plans,
    routes_reports,
    routes_search,
    routes_topup,
    routes_upstream,
    routes_usage,
)
from aiapi_accounts.errors import ERROR_TYPES, AccountsError
from aiapi_accounts.http import error_body
from aiapi_accounts.openapi import Endpoint, docs_page, openapi_document
from aiapi_accounts.operators import routes as operator_routes
from aiapi_accounts.operators.console import Console, console_routes
from aiapi_accounts.operators.gate import OperatorGate
from aiapi_accounts.pages import page_routes
from aiapi_accounts.pages.render import Renderer
from aiapi_accounts.service import Service
from aiapi_accounts.settings import AccountsSettings

log = logging.getLogger("aiapi.accounts.http")

ENDPOINTS: tuple[Endpoint, ...] = (
    routes_admin.ENDPOINTS
    + routes_search.ENDPOINTS
    + routes_reports.ENDPOINTS
    + operator_routes.ENDPOINTS
    + routes_catalogue.ENDPOINTS
    + routes_plans.ENDPOINTS
    + routes_customer.ENDPOINTS
    + routes_mail.ENDPOINTS
    + routes_topup.ENDPOINTS
    + routes_usage.ENDPOINTS
    + routes_upstream.ENDPOINTS
)
# The operator API is every /admin/ route; it is served on its own listener only.
OPERATOR = tuple(e for e in ENDPOINTS if e.path.startswith("/admin/"))
CUSTOMER = tuple(e for e in ENDPOINTS if not e.path.startswith("/admin/"))
_OPERATOR_ABOUT = (
    "Operator API (/admin/v1, Authorization: Bearer $AIAPI_ADMIN_TOKEN or an operator token; "
    "the support role may only read; every write is in the audit log, with its reason from a "
    '"reason" field or the Aiapi-Reason header).'
)
_CUSTOMER_ABOUT = "Customer API (/api/v1, session cookie + X-CSRF-Token on writes)."


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccountsError)
    return JSONResponse(error_body(exc.type, exc.message), exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    kind = ERROR_TYPES[problem_for_status(status)]
    return JSONResponse(error_body(kind, str(getattr(exc, "detail", "error"))), status)


async def _unstorable(request: Request, exc: Exception) -> Response:
    """A value PostgreSQL refuses to hold (a NUL character, a number out of range) came from the
    request: the caller's error, said without echoing the value."""
    log.warning("refused unstorable input on %s %s", request.method, request.url.path)
    message = "the request holds a value that cannot be stored (a NUL character?)"
    return JSONResponse(
        error_body(ERROR_TYPES[Problem.INVALID_REQUEST], message), Problem.INVALID_REQUEST.status
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse(
        error_body(ERROR_TYPES[Problem.INTERNAL], "internal error"), Problem.INTERNAL.status
    )


def _routes(endpoints: Sequence[Endpoint], title: str, about: str) -> list[BaseRoute]:
    spec = openapi_document(endpoints, version=version("aiapi-accounts"), title=title, about=about)
    page = docs_page(endpoints)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    routes = [Route(e.path, e.handler, methods=[e.method]) for e in endpoints]
    return [
        *_merge_methods(routes),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]


def _merge_methods(routes: list[Route]) -> list[Route]:
    """Starlette matches the first route whose path fits: a path served for several methods
    needs one Route that dispatches on the method (else the second method answers 405)."""
    by_path: dict[str, dict[str, Route]] = {}
    for route in routes:
        for method in route.methods or ():
            if method != "HEAD":
                by_path.setdefault(route.path, {})[method] = route
    merged: list[Route] = []
    for path, methods in by_path.items():
        table = {m: r.endpoint for m, r in methods.items()}

        async def dispatch(request: Request, table: dict[str, Any] = table) -> Response:
            # Starlette serves HEAD wherever GET is; the GET handler answers it.
            method = "GET" if request.method == "HEAD" else request.method
            response: Response = await table[method](request)
            return response

        merged.append(Route(path, dispatch, methods=list(table)))
    return merged


def _app(
    service: Service, routes: list[BaseRoute], middleware: Sequence[Middleware] = ()
) -> Starlette:
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            AccountsError: _domain_error,
            404: _http_error,
            405: _http_error,
            psycopg.DataError: _unstorable,
            Exception: _unexpected,
        },
    )
    app.state.service = service
    return app


def create_app(settings: AccountsSettings, service: Service) -> Starlette:
    """The public port: the customer API and the dashboard."""
    routes = _routes(CUSTOMER, "aiapi accounts: customer API", _CUSTOMER_ABOUT)
    return _app(service, [*routes, *page_routes()])  # the customer dashboard at /


def create_admin_app(settings: AccountsSettings, service: Service) -> Starlette:
    """The admin port: the operator API and the console, bound to loopback unless
    AIAPI_ADMIN_HOST says not. Every request passes the operator gate first (who, the role by
    method, the audit entry of every write): a route added here is covered without asking."""
    console = Console(Renderer())
    routes = _routes(OPERATOR, "aiapi accounts: operator API", _OPERATOR_ABOUT)
    gate = Middleware(OperatorGate, refuse_page=console.refusal)
    return _app(service, [*routes, *console_routes(console)], [gate])
