"""The ``prices`` table: each model's prices over half-open ranges ``[from, until)``.

PostgreSQL's exclusion constraint refuses two ranges of one model that overlap, whatever writes
them. Adding a price from a moment closes the range in force at that moment there and opens the
new one until the next price that was already planned.

Queries are composed only from this module's constant column list; every value is a parameter.
"""

# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiapi_billing.pricing import Price
from aiapi_billing.repository import Conn

_COLUMNS = "id, model_id, lower(effective), input_nano_per_mtok, output_nano_per_mtok"


def _price(row: tuple[object, ...]) -> Price:
    price_id, model, start, input_nano, output_nano = row
    assert isinstance(start, datetime)
    return Price(int(str(price_id)), str(model), start, int(str(input_nano)), int(str(output_nano)))


async def price_at(conn: Conn, model: str, moment: datetime) -> Price | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM prices WHERE model_id = %s AND effective @> %s::timestamptz",
        (model, moment),
    )
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
        f" VALUES (%s, tstzrange(%s, %s, '[)'), %s, %s) RETURNING {_COLUMNS}",
        (model, effective_from, until, input_nano, output_nano),
    )
    created = await cur.fetchone()
    assert created is not None
    return _price(created)


async def is_priced(conn: Conn, model: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM prices WHERE model_id = %s LIMIT 1", (model,))
    return await cur.fetchone() is not None


async def all_prices(conn: Conn) -> list[Price]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM prices ORDER BY model_id, lower(effective)")
    return [_price(row) for row in await cur.fetchall()]


async def prices_and_windows(
    conn: Conn, models: Sequence[str]
) -> tuple[list[Price], dict[str, int], int]:
    """These models' prices and context windows (the long-context premium needs the window),
    and the catalogue's version (is the caller's copy of the terms current?), in one statement."""
    cur = await conn.execute(
        "SELECT v.version, p.* FROM catalogue_version v LEFT JOIN LATERAL ("
        f" SELECT {_COLUMNS},"
        " (SELECT context_window FROM catalogue_models m WHERE m.id = model_id)"
        " FROM prices WHERE model_id = ANY(%s) ORDER BY model_id, lower(effective)) p ON true",
        (list(models),),
    )
    table: list[Price] = []
    windows: dict[str, int] = {}
    rows = await cur.fetchall()
    version = int(rows[0][0]) if rows else 0  # one row at least: the version's
    for _, *row, window in rows:
        if row[0] is None:  # no price of these models: the version alone
            continue
        price = _price(tuple(row))
        table.append(price)
        if window is not None:
            windows[price.model] = int(str(window))
    return table, windows, version
