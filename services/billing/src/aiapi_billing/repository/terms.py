"""The effective-dated terms of sale: ``plans``, ``meter_prices`` and ``account_terms``.

Each row is one version, in force from its ``effective_from`` until the next version of the same
name (migration 0020). Writing a version at a moment that already has one replaces it; the
triggers bump the catalogue version, so the publisher puts every change in KV.
"""

from __future__ import annotations

from datetime import datetime

from aiapi_shared.catalogue import AccountTerms, MeterPoint, Plan

from aiapi_billing.repository import Conn


async def all_plans(conn: Conn) -> list[Plan]:
    cur = await conn.execute(
        "SELECT plan, effective_from, display_name, price_nano, requests_per_minute,"
        " tokens_per_minute, discount_bps, choosable FROM plans"
        " ORDER BY (SELECT min(created_at) FROM plans f WHERE f.plan = plans.plan), plan,"
        " effective_from"
    )
    return [
        Plan(
            id=name,
            effective_from=start,
            display_name=display,
            price_usd=price,
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
            discount_bps=discount,
            choosable=choosable,
        )
        for name, start, display, price, rpm, tpm, discount, choosable in await cur.fetchall()
    ]


async def plan_exists(conn: Conn, name: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM plans WHERE plan = %s LIMIT 1", (name,))
    return await cur.fetchone() is not None


async def put_plan(conn: Conn, plan: Plan) -> None:
    await conn.execute(
        "INSERT INTO plans (plan, effective_from, display_name, price_nano, requests_per_minute,"
        " tokens_per_minute, discount_bps, choosable) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (plan, effective_from) DO UPDATE SET display_name = excluded.display_name,"
        " price_nano = excluded.price_nano, requests_per_minute = excluded.requests_per_minute,"
        " tokens_per_minute = excluded.tokens_per_minute, discount_bps = excluded.discount_bps,"
        " choosable = excluded.choosable",
        (
            plan.id,
            plan.effective_from,
            plan.display_name,
            plan.price_usd,
            plan.requests_per_minute,
            plan.tokens_per_minute,
            plan.discount_bps,
            plan.choosable,
        ),
    )


async def all_meter_prices(conn: Conn) -> dict[str, tuple[MeterPoint, ...]]:
    cur = await conn.execute(
        "SELECT meter, effective_from, usd_per_unit, input_bps, output_bps FROM meter_prices"
        " ORDER BY meter, effective_from"
    )
    meters: dict[str, list[MeterPoint]] = {}
    for meter, start, unit, input_bps, output_bps in await cur.fetchall():
        meters.setdefault(meter, []).append(
            MeterPoint(
                effective_from=start,
                usd_per_unit=unit,
                input_bps=input_bps,
                output_bps=output_bps,
            )
        )
    return {meter: tuple(points) for meter, points in meters.items()}


async def meter_priced(conn: Conn, meter: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM meter_prices WHERE meter = %s LIMIT 1", (meter,))
    return await cur.fetchone() is not None


async def put_meter_price(conn: Conn, meter: str, point: MeterPoint) -> None:
    await conn.execute(
        "INSERT INTO meter_prices (meter, effective_from, usd_per_unit, input_bps, output_bps)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (meter, effective_from) DO UPDATE SET"
        " usd_per_unit = excluded.usd_per_unit, input_bps = excluded.input_bps,"
        " output_bps = excluded.output_bps",
        (meter, point.effective_from, point.usd_per_unit, point.input_bps, point.output_bps),
    )


async def all_account_terms(conn: Conn) -> dict[str, tuple[AccountTerms, ...]]:
    """Every account's own terms, by account (few: negotiated ones)."""
    cur = await conn.execute(
        "SELECT account_id, effective_from, requests_per_minute, tokens_per_minute, discount_bps"
        " FROM account_terms ORDER BY account_id, effective_from"
    )
    terms: dict[str, list[AccountTerms]] = {}
    for account_id, start, rpm, tpm, discount in await cur.fetchall():
        terms.setdefault(account_id, []).append(
            AccountTerms(
                effective_from=start,
                requests_per_minute=rpm,
                tokens_per_minute=tpm,
                discount_bps=discount,
            )
        )
    return {account_id: tuple(versions) for account_id, versions in terms.items()}


async def put_account_terms(conn: Conn, account_id: str, terms: AccountTerms) -> None:
    await conn.execute(
        "INSERT INTO account_terms (account_id, effective_from, requests_per_minute,"
        " tokens_per_minute, discount_bps) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (account_id, effective_from) DO UPDATE SET"
        " requests_per_minute = excluded.requests_per_minute,"
        " tokens_per_minute = excluded.tokens_per_minute, discount_bps = excluded.discount_bps",
        (
            account_id,
            terms.effective_from,
            terms.requests_per_minute,
            terms.tokens_per_minute,
            terms.discount_bps,
        ),
    )


async def clock(conn: Conn) -> datetime:
    """The database's clock: every billing replica dates a change by the same one."""
    cur = await conn.execute("SELECT clock_timestamp()")
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]
