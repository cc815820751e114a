"""``python -m aiapi_billing`` runs the service; ``python -m aiapi_billing audit`` checks the books;
``python -m aiapi_billing price MODEL FROM INPUT OUTPUT`` adds a price (USD per million tokens)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

import uvicorn
import uvloop
from aiapi_shared.logs import configure_logging

from aiapi_billing.app import create_app
from aiapi_billing.service import SCHEMA, Service, prepare_database
from aiapi_billing.settings import BillingSettings


async def _serve(settings: BillingSettings) -> int:
    service = Service(settings)
    config = uvicorn.Config(
        create_app(settings, service),
        host=settings.host,
        port=settings.billing_port,
        access_log=False,
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not serving.done():
        await asyncio.wait([serving], timeout=0.5)
        if (
            service.bus is not None
            and service.bus.closed.is_set()
            and not service.stop_event.is_set()
        ):
            server.should_exit = (
                True  # NATS closed for good: exit non-zero, the supervisor restarts
            )
            await serving
            return 1
    return 0 if service.bus is not None else 1


async def _audit(settings: BillingSettings) -> int:
    from aiapi_shared.db import open_pool

    from aiapi_billing.auditor import audit

    pool = open_pool(settings.database_dsn(), schema=SCHEMA, min_size=1, max_size=1)
    await pool.open()
    try:
        async with pool.connection() as conn:
            findings = await audit(conn)
    finally:
        await pool.close()
    print(json.dumps({"ok": not findings, "findings": findings}, indent=2))
    return 0 if not findings else 1


async def _price(settings: BillingSettings, args: list[str]) -> int:
    from aiapi_shared.catalogue import default_catalogue
    from aiapi_shared.db import open_pool
    from aiapi_shared.money import parse_usd

    from aiapi_billing.repository.prices import add_price

    model, start, input_usd, output_usd = args
    dsn = settings.database_dsn()
    await prepare_database(dsn, default_catalogue())
    pool = open_pool(dsn, schema=SCHEMA, min_size=1, max_size=1)
    await pool.open()
    try:
        async with pool.connection() as conn:
            price = await add_price(
                conn,
                model,
                datetime.fromisoformat(start),
                parse_usd(input_usd),
                parse_usd(output_usd),
            )
    finally:
        await pool.close()
    print(json.dumps({"price_id": price.price_id, "model": model, "effective_from": start}))
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = BillingSettings()
    configure_logging(settings.log_level)
    if args[:1] == ["audit"]:
        code = uvloop.run(_audit(settings))
    elif args[:1] == ["price"] and len(args) == 5:
        code = uvloop.run(_price(settings, args[1:]))
    elif not args:
        code = uvloop.run(_serve(settings))
    else:
        print(__doc__, file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
