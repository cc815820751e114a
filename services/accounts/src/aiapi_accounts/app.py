"""The Starlette application: routes from the endpoint tables, errors mapped in one place,
health, OpenAPI and its docs page. ``create_app(settings)`` is the only way to build it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aiapi_accounts import (
    routes_admin,
    routes_catalogue,
    routes_customer,
    routes_topup,
    routes_usage,
)
from aiapi_accounts.errors import AccountsError
from aiapi_accounts.openapi import Endpoint, docs_page, openapi_document
from aiapi_accounts.pages import page_routes
from aiapi_accounts.service import Service
from aiapi_accounts.settings import AccountsSettings

log = logging.getLogger("aiapi.accounts.http")

ENDPOINTS: tuple[Endpoint, ...] = (
    routes_admin.ENDPOINTS
    + routes_catalogue.ENDPOINTS
    + routes_customer.ENDPOINTS
    + routes_topup.ENDPOINTS
    + routes_usage.ENDPOINTS
)


def error_body(error_type: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"type": error_type, "message": message}}


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccountsError)
    return JSONResponse(error_body(exc.type, exc.message), exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    kind = {404: "not_found_error", 405: "invalid_request_error"}.get(status, "api_error")
    return JSONResponse(error_body(kind, str(getattr(exc, "detail", "error"))), status)


async def _unstorable(request: Request, exc: Exception) -> Response:
    """A value PostgreSQL refuses to hold (a NUL character, a number out of range) came from the
    request: the caller's error, said without echoing the value."""
    log.warning("refused unstorable input on %s %s", request.method, request.url.path)
    message = "the request holds a value that cannot be stored (a NUL character?)"
    return JSONResponse(error_body("invalid_request_error", message), 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal error"), 500)


def _routes(service: Service) -> list[BaseRoute]:
    spec = openapi_document(ENDPOINTS, version=version("aiapi-accounts"))
    page = docs_page(ENDPOINTS)

    async def healthz(request: Request) -> Response:
        ok = await service.healthy()
        return JSONResponse({"status": "ok" if ok else "unavailable"}, 200 if ok else 503)

    async def readyz(request: Request) -> Response:
        ok = service.ready and await service.healthy()
        return JSONResponse({"status": "ready" if ok else "not ready"}, 200 if ok else 503)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    routes = [Route(e.path, e.handler, methods=[e.method]) for e in ENDPOINTS]
    return [
        *_merge_methods(routes),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        *page_routes(),  # the customer dashboard at /
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
            response: Response = await table[request.method](request)
            return response

        merged.append(Route(path, dispatch, methods=list(table)))
    return merged


def create_app(settings: AccountsSettings, service: Service | None = None) -> Starlette:
    service = service or Service(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.ctx = await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=_routes(service),
        lifespan=lifespan,
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
