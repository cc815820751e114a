"""``python -m aiapi_billing`` runs the service; ``python -m aiapi_billing audit`` checks the books;
``python -m aiapi_billing price MODEL FROM INPUT OUTPUT`` adds a price (USD per million tokens)."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import uvloop
from aiapi_shared.logs import configure_logging
from aiapi_shared.runner import Plan, launch, load_settings

from aiapi_billing.service import SCHEMA, Service, prepare_database
from aiapi_billing.settings import BillingSettings


def plan() -> Plan:
    """The service: no public listener (its API is on NATS), the internal one only."""
    settings = load_settings(BillingSettings)
    return Plan.of(settings, Service(settings))


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
    if not args:
        launch(plan)
    settings = BillingSettings()
    configure_logging(settings.log_level)
    if args[:1] == ["audit"]:
        code = uvloop.run(_audit(settings))
    elif args[:1] == ["price"] and len(args) == 5:
        code = uvloop.run(_price(settings, args[1:]))
    else:
        print(__doc__, file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
