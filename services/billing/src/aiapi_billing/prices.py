"""The price table: seeded from the catalogue, extended by an operator, read by effective date.

Ranges are half-open ``[from, until)``; PostgreSQL's exclusion constraint refuses two ranges of
one model that overlap, whatever writes them. Adding a price from a moment closes the range in
force at that moment there and opens the new one until the next price that was already planned.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from aiapi_shared.catalogue import Catalogue

from aiapi_billing.ledger import Conn
from aiapi_billing.pricing import Price

_PRICE_AT = (
    "SELECT id, model_id, lower(effective), input_nano_per_mtok, output_nano_per_mtok"
    " FROM prices WHERE model_id = %s AND effective @> %s::timestamptz"
)


def _price(row: tuple[object, ...]) -> Price:
    price_id, model, start, input_nano, output_nano = row
    assert isinstance(start, datetime)
    return Price(int(str(price_id)), str(model), start, int(str(input_nano)), int(str(output_nano)))


async def price_at(conn: Conn, model: str, moment: datetime) -> Price | None:
    cur = await conn.execute(_PRICE_AT, (model, moment))
    row = await cur.fetchone()
    return None if row is None else _price(row)


async def add_price(
    conn: Conn, model: str, effective_from: datetime, input_nano: int, output_nano: int
) -> Price:
    """Insert a price from ``effective_from`` (the caller's transaction; serialised per model)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('aiapi.prices.' || %s))", (model,))
    cur = await conn.execute(
        "SELECT min(lower(effective)) FROM prices WHERE model_id = %s AND lower(effective) > %s",
        (model, effective_from),
    )
    row = await cur.fetchone()
    until = row[0] if row else None
    await conn.execute(
        "UPDATE prices SET effective = tstzrange(lower(effective), %s, '[)')"
        " WHERE model_id = %s AND effective @> %s::timestamptz AND lower(effective) < %s",
        (effective_from, model, effective_from, effective_from),
    )
    cur = await conn.execute(
        "INSERT INTO prices (model_id, effective, input_nano_per_mtok, output_nano_per_mtok)"
        " VALUES (%s, tstzrange(%s, %s, '[)'), %s, %s)"
        " RETURNING id, model_id, lower(effective), input_nano_per_mtok, output_nano_per_mtok",
        (model, effective_from, until, input_nano, output_nano),
    )
    created = await cur.fetchone()
    assert created is not None
    return _price(created)


async def seed_from_catalogue(conn: Conn, catalogue: Catalogue) -> int:
    """Give each catalogue model its prices once (a model already priced is left to the operator)."""
    seeded = 0
    for model in catalogue.models:
        cur = await conn.execute("SELECT 1 FROM prices WHERE model_id = %s LIMIT 1", (model.id,))
        if await cur.fetchone() is not None:
            continue
        for point in sorted(model.prices, key=lambda p: p.effective_from):
            await add_price(
                conn,
                model.id,
                point.effective_from,
                point.input_usd_per_mtok,
                point.output_usd_per_mtok,
            )
            seeded += 1
    return seeded


async def all_prices(conn: Conn) -> list[Price]:
    cur = await conn.execute(
        "SELECT id, model_id, lower(effective), input_nano_per_mtok, output_nano_per_mtok"
        " FROM prices ORDER BY model_id, lower(effective)"
    )
    return [_price(row) for row in await cur.fetchall()]


async def prices_of(conn: Conn, model: str) -> list[Price]:
    cur = await conn.execute(
        "SELECT id, model_id, lower(effective), input_nano_per_mtok, output_nano_per_mtok"
        " FROM prices WHERE model_id = %s ORDER BY lower(effective)",
        (model,),
    )
    return [_price(row) for row in await cur.fetchall()]


async def prices_of_models(conn: Conn, models: list[str]) -> list[Price]:
    cur = await conn.execute(
        "SELECT id, model_id, lower(effective), input_nano_per_mtok, output_nano_per_mtok"
        " FROM prices WHERE model_id = ANY(%s) ORDER BY model_id, lower(effective)",
        (models,),
    )
    return [_price(row) for row in await cur.fetchall()]


class PriceBook:
    """An in-memory copy of the price table for admission (holds are estimates; settlement reads
    the table itself). Refreshed at most every ``max_age_s`` so an operator's change shows soon."""

    def __init__(self, max_age_s: float = 2.0) -> None:
        self._by_model: dict[str, list[Price]] = {}
        self._loaded_at = float("-inf")
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()

    def load(self, prices: list[Price]) -> None:
        by_model: dict[str, list[Price]] = {}
        for price in prices:
            by_model.setdefault(price.model, []).append(price)
        self._by_model = by_model
        self._loaded_at = time.monotonic()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._loaded_at > self._max_age_s

    async def refresh(self, conn: Conn) -> None:
        async with self._lock:
            if self.stale:
                self.load(await all_prices(conn))

    def price_at(self, model: str, moment: datetime) -> Price | None:
        in_force = [p for p in self._by_model.get(model, []) if p.effective_from <= moment]
        return max(in_force, key=lambda p: p.effective_from) if in_force else None
