"""Billing's HTTP surface: health and readiness only (its API is on NATS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aiapi_billing.service import Service
from aiapi_billing.settings import BillingSettings


def create_app(settings: BillingSettings, service: Service | None = None) -> Starlette:
    svc = service or Service(settings)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    async def healthz(_: Request) -> Response:
        ok = await svc.healthy()
        return JSONResponse(
            {"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503
        )

    async def metrics(_: Request) -> Response:
        counters = svc.consumers.counters if svc.consumers else None
        lines = [
            f"aiapi_billing_{name}_total {value}" for name, value in vars(counters or {}).items()
        ]
        # The consumers' redelivery and dead-letter counters (aiapi_consumer_*_total).
        consumers = svc.bus.metrics.render().decode() if svc.bus else ""
        return PlainTextResponse("\n".join(lines) + "\n" + consumers)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", healthz),
        Route("/metrics", metrics),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = svc
    return app
