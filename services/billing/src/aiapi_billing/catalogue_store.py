"""The live catalogue: models on sale and aliases (tables), with the price table's ranges, and
the effective-dated terms of sale (plans, meter prices, accounts' own terms).

Seeded from the shipped catalogue once; changed by an operator (request/reply or the CLI) without
a deploy. ``load`` builds the :class:`Catalogue` the edge serves: a model is sold while it is
``on_sale`` and has at least one price; an alias is served while its target is sold. Cache
multipliers and the long-context threshold stay those of the catalogue billing was started with.
Every function runs in the caller's transaction; the statements are ``repository/catalogue.py``'s,
``repository/prices.py``'s and ``repository/terms.py``'s; the rules of a new version are
``term_versions.py``'s.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiapi_shared import billing_api as api
from aiapi_shared.catalogue import Catalogue, ModelEntry, ModelTraits, PricePoint

from aiapi_billing import term_versions
from aiapi_billing.errors import BillingError, NotFound
from aiapi_billing.repository import Conn, catalogue, prices, terms


async def seed_prices(conn: Conn, shipped: Catalogue) -> int:
    """Give each catalogue model its prices once (a model already priced is left to the operator)."""
    seeded = 0
    for model in shipped.models:
        if await prices.is_priced(conn, model.id):
            continue
        for point in sorted(model.prices, key=lambda p: p.effective_from):
            await prices.add_price(
                conn,
                model.id,
                point.effective_from,
                point.input_usd_per_mtok,
                point.output_usd_per_mtok,
            )
            seeded += 1
    return seeded


async def seed(conn: Conn, shipped: Catalogue) -> None:
    """Give the tables the shipped models and aliases once; an operator's edits are kept."""
    for model in shipped.models:
        await catalogue.insert_model_if_new(conn, model)
    for alias, target in shipped.aliases.items():
        await catalogue.insert_alias_if_new(conn, alias, target)
    for plan in shipped.plans:
        if not await terms.plan_exists(conn, plan.id):
            await terms.put_plan(conn, plan)
    for meter, points in shipped.meters.items():
        if not await terms.meter_priced(conn, meter):
            for point in points:
                await terms.put_meter_price(conn, meter, point)


async def load(conn: Conn, shipped: Catalogue) -> tuple[int, Catalogue]:
    """The catalogue as sold now, and its version (read in the caller's transaction)."""
    current = await catalogue.version(conn)
    points: dict[str, list[PricePoint]] = {}
    for price in await prices.all_prices(conn):
        points.setdefault(price.model, []).append(
            PricePoint(
                effective_from=price.effective_from,
                input_usd_per_mtok=price.input_nano_per_mtok,
                output_usd_per_mtok=price.output_nano_per_mtok,
            )
        )
    models = [
        ModelEntry(
            id=row.id,
            display_name=row.display_name,
            created_at=row.created_at,
            context_window=row.context_window,
            max_output_tokens=row.max_output_tokens,
            traits=ModelTraits.model_validate(row.traits),
            prices=tuple(points[row.id]),
        )
        for row in await catalogue.models_on_sale(conn)
        if row.id in points
    ]
    sold = {m.id for m in models}
    aliases = {a: t for a, t in (await catalogue.aliases(conn)).items() if t in sold}
    return current, Catalogue(
        models=tuple(models),
        aliases=aliases,
        plans=tuple(await terms.all_plans(conn)),
        cache_multipliers_bps=shipped.cache_multipliers_bps,
        meters=await terms.all_meter_prices(conn),
        long_context=shipped.long_context,
        account_terms=await terms.all_account_terms(conn),
    )


async def put_model(conn: Conn, cmd: api.PutModelCommand) -> None:
    """Add or change a model (the caller's transaction); a new model comes with its first price."""
    exists = await catalogue.model_exists(conn, cmd.id)
    priced = cmd.input_usd_per_mtok is not None and cmd.output_usd_per_mtok is not None
    if not exists and not priced:
        raise BillingError(f"a new model needs input and output prices: {cmd.id}")
    await catalogue.upsert_model(
        conn,
        cmd.id,
        display_name=cmd.display_name,
        context_window=cmd.context_window,
        max_output_tokens=cmd.max_output_tokens,
        traits=cmd.traits.model_dump(),
        on_sale=cmd.on_sale,
    )
    if priced:
        assert cmd.input_usd_per_mtok is not None and cmd.output_usd_per_mtok is not None
        await prices.add_price(
            conn,
            cmd.id,
            cmd.effective_from or datetime.now(UTC),
            cmd.input_usd_per_mtok,
            cmd.output_usd_per_mtok,
        )


async def put_alias(conn: Conn, cmd: api.PutAliasCommand) -> None:
    if cmd.target is None:
        await catalogue.delete_alias(conn, cmd.alias)
        return
    if await catalogue.model_exists(conn, cmd.alias):
        raise BillingError(f"{cmd.alias} is a model id; an alias cannot shadow it")
    if not await catalogue.model_exists(conn, cmd.target):
        raise NotFound(f"no model {cmd.target}")
    await catalogue.put_alias(conn, cmd.alias, cmd.target)


async def add_model_price(conn: Conn, cmd: api.AddPriceCommand) -> None:
    if not await catalogue.model_exists(conn, cmd.model):
        raise NotFound(f"no model {cmd.model}")
    await prices.add_price(
        conn, cmd.model, cmd.effective_from, cmd.input_usd_per_mtok, cmd.output_usd_per_mtok
    )


async def put_plan(conn: Conn, cmd: api.PutPlanCommand) -> None:
    """A new version of a plan (a new plan's first), from ``effective_from`` or now."""
    versions = [p for p in await terms.all_plans(conn) if p.id == cmd.id]
    await terms.put_plan(conn, term_versions.plan_version(versions, cmd, await terms.clock(conn)))


async def put_meter_price(conn: Conn, cmd: api.PutMeterPriceCommand) -> None:
    """A price of a meter from ``effective_from`` or now: an option the catalogue could not
    price is accepted once this starts."""
    point = term_versions.meter_version(cmd, await terms.clock(conn))
    await terms.put_meter_price(conn, cmd.meter, point)


async def put_account_terms(conn: Conn, cmd: api.PutAccountTermsCommand) -> None:
    """An account's own limits and discount from ``effective_from`` or now (what the command
    leaves out is kept)."""
    versions = (await terms.all_account_terms(conn)).get(cmd.account_id, ())
    version = term_versions.account_terms_version(versions, cmd, await terms.clock(conn))
    await terms.put_account_terms(conn, cmd.account_id, version)
