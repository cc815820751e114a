"""The live catalogue: models on sale and aliases (tables), with the price table's ranges.

Seeded from the shipped catalogue once; changed by an operator (request/reply or the CLI) without
a deploy. ``load`` builds the :class:`Catalogue` the edge serves: a model is sold while it is
``on_sale`` and has at least one price; an alias is served while its target is sold. Plans and
cache multipliers stay those of the shipped catalogue (they are the product's terms).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiapi_shared import billing_api as api
from aiapi_shared.catalogue import Catalogue, ModelEntry, ModelTraits, PricePoint
from psycopg.types.json import Jsonb

from aiapi_billing.errors import BillingError, NotFound
from aiapi_billing.ledger import Conn
from aiapi_billing.prices import add_price, all_prices


async def seed(conn: Conn, shipped: Catalogue) -> None:
    """Give the tables the shipped models and aliases once; an operator's edits are kept."""
    for model in shipped.models:
        await conn.execute(
            "INSERT INTO catalogue_models"
            " (id, display_name, created_at, context_window, max_output_tokens, traits)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (
                model.id,
                model.display_name,
                model.created_at,
                model.context_window,
                model.max_output_tokens,
                Jsonb(model.traits.model_dump()),
            ),
        )
    for alias, target in shipped.aliases.items():
        await conn.execute(
            "INSERT INTO catalogue_aliases (alias, target) VALUES (%s, %s)"
            " ON CONFLICT (alias) DO NOTHING",
            (alias, target),
        )


async def version(conn: Conn) -> int:
    cur = await conn.execute("SELECT version FROM catalogue_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def load(conn: Conn, shipped: Catalogue) -> tuple[int, Catalogue]:
    """The catalogue as sold now, and its version (read in the caller's transaction)."""
    current = await version(conn)
    prices: dict[str, list[PricePoint]] = {}
    for price in await all_prices(conn):
        prices.setdefault(price.model, []).append(
            PricePoint(
                effective_from=price.effective_from,
                input_usd_per_mtok=price.input_nano_per_mtok,
                output_usd_per_mtok=price.output_nano_per_mtok,
            )
        )
    cur = await conn.execute(
        "SELECT id, display_name, created_at, context_window, max_output_tokens, traits"
        " FROM catalogue_models WHERE on_sale ORDER BY created_at DESC, id"
    )
    models = [
        ModelEntry(
            id=row[0],
            display_name=row[1],
            created_at=row[2],
            context_window=row[3],
            max_output_tokens=row[4],
            traits=ModelTraits.model_validate(row[5]),
            prices=tuple(prices[row[0]]),
        )
        for row in await cur.fetchall()
        if row[0] in prices
    ]
    sold = {m.id for m in models}
    cur = await conn.execute("SELECT alias, target FROM catalogue_aliases ORDER BY alias")
    aliases = {str(a): str(t) for a, t in await cur.fetchall() if t in sold}
    return current, Catalogue(
        models=tuple(models),
        aliases=aliases,
        plans=shipped.plans,
        cache_multipliers_bps=shipped.cache_multipliers_bps,
    )


async def put_model(conn: Conn, cmd: api.PutModelCommand) -> None:
    """Add or change a model (the caller's transaction); a new model comes with its first price."""
    cur = await conn.execute("SELECT 1 FROM catalogue_models WHERE id = %s", (cmd.id,))
    exists = await cur.fetchone() is not None
    priced = cmd.input_usd_per_mtok is not None and cmd.output_usd_per_mtok is not None
    if not exists and not priced:
        raise BillingError(f"a new model needs input and output prices: {cmd.id}")
    await conn.execute(
        "INSERT INTO catalogue_models"
        " (id, display_name, context_window, max_output_tokens, traits, on_sale)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
        " display_name = excluded.display_name, context_window = excluded.context_window,"
        " max_output_tokens = excluded.max_output_tokens, traits = excluded.traits,"
        " on_sale = excluded.on_sale",
        (
            cmd.id,
            cmd.display_name,
            cmd.context_window,
            cmd.max_output_tokens,
            Jsonb(cmd.traits.model_dump()),
            cmd.on_sale,
        ),
    )
    if priced:
        assert cmd.input_usd_per_mtok is not None and cmd.output_usd_per_mtok is not None
        await add_price(
            conn,
            cmd.id,
            cmd.effective_from or datetime.now(UTC),
            cmd.input_usd_per_mtok,
            cmd.output_usd_per_mtok,
        )


async def put_alias(conn: Conn, cmd: api.PutAliasCommand) -> None:
    if cmd.target is None:
        await conn.execute("DELETE FROM catalogue_aliases WHERE alias = %s", (cmd.alias,))
        return
    cur = await conn.execute("SELECT 1 FROM catalogue_models WHERE id = %s", (cmd.alias,))
    if await cur.fetchone() is not None:
        raise BillingError(f"{cmd.alias} is a model id; an alias cannot shadow it")
    cur = await conn.execute("SELECT 1 FROM catalogue_models WHERE id = %s", (cmd.target,))
    if await cur.fetchone() is None:
        raise NotFound(f"no model {cmd.target}")
    await conn.execute(
        "INSERT INTO catalogue_aliases (alias, target) VALUES (%s, %s)"
        " ON CONFLICT (alias) DO UPDATE SET target = excluded.target",
        (cmd.alias, cmd.target),
    )


async def add_model_price(conn: Conn, cmd: api.AddPriceCommand) -> None:
    cur = await conn.execute("SELECT 1 FROM catalogue_models WHERE id = %s", (cmd.model,))
    if await cur.fetchone() is None:
        raise NotFound(f"no model {cmd.model}")
    await add_price(
        conn, cmd.model, cmd.effective_from, cmd.input_usd_per_mtok, cmd.output_usd_per_mtok
    )
