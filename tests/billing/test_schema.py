"""The database itself guards the ledger: append-only transfers, non-overlapping price ranges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from aiapi_billing.pricing import Price
from aiapi_billing.repository.prices import add_price, price_at
from aiapi_shared.money import parse_usd

from tests.billing.conftest import scalar

SONNET = "claude-sonnet-4-6"


async def test_prices_are_seeded_from_the_catalogue(db: psycopg.AsyncConnection[Any]) -> None:
    price = await price_at(db, SONNET, datetime(2026, 6, 1, tzinfo=UTC))
    assert price is not None
    assert (price.input_nano_per_mtok, price.output_nano_per_mtok) == (
        parse_usd("3.00"),
        parse_usd("15.00"),
    )
    assert await price_at(db, SONNET, datetime(2025, 6, 1, tzinfo=UTC)) is None


async def test_a_new_price_closes_the_previous_range(db: psycopg.AsyncConnection[Any]) -> None:
    change = datetime(2026, 12, 1, tzinfo=UTC)
    async with db.transaction():
        await add_price(db, SONNET, change, parse_usd("2.00"), parse_usd("10.00"))
    before = await price_at(db, SONNET, datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    after = await price_at(db, SONNET, change)
    assert isinstance(before, Price) and before.input_nano_per_mtok == parse_usd("3.00")
    assert isinstance(after, Price) and after.input_nano_per_mtok == parse_usd("2.00")
    # A price planned in between ends where the later one starts.
    async with db.transaction():
        await add_price(db, SONNET, datetime(2026, 11, 15, tzinfo=UTC), 7, 7)
    assert (await price_at(db, SONNET, datetime(2026, 11, 20, tzinfo=UTC))).input_nano_per_mtok == 7  # type: ignore[union-attr]
    assert (await price_at(db, SONNET, change)).input_nano_per_mtok == parse_usd("2.00")  # type: ignore[union-attr]


async def test_overlapping_price_ranges_are_refused_by_the_database(
    db: psycopg.AsyncConnection[Any],
) -> None:
    with pytest.raises(psycopg.errors.ExclusionViolation):
        await db.execute(
            "INSERT INTO prices (model_id, effective, input_nano_per_mtok, output_nano_per_mtok)"
            " VALUES (%s, tstzrange('2026-03-01', NULL), 1, 1)",
            (SONNET,),
        )
    # Another model's range may overlap freely.
    await db.execute(
        "INSERT INTO prices (model_id, effective, input_nano_per_mtok, output_nano_per_mtok)"
        " VALUES ('claude-new', tstzrange('2026-03-01', NULL), 1, 1)"
    )


async def test_transfers_can_be_neither_updated_nor_deleted(
    db: psycopg.AsyncConnection[Any],
) -> None:
    await db.execute("INSERT INTO accounts (account_id) VALUES ('acc_x')")
    await db.execute(
        "INSERT INTO transfers (transfer_key, kind, account_id, from_account, to_account, amount,"
        " balance_after, reference) VALUES ('k1', 'deposit', 'acc_x', 'sys:deposits',"
        " 'cust:acc_x', 5, 5, 'd1')"
    )
    with pytest.raises(psycopg.errors.RaiseException):
        await db.execute("UPDATE transfers SET amount = 6")
    with pytest.raises(psycopg.errors.RaiseException):
        await db.execute("DELETE FROM transfers")
    with pytest.raises(psycopg.errors.UniqueViolation):
        await db.execute(
            "INSERT INTO transfers (transfer_key, kind, account_id, from_account, to_account,"
            " amount, balance_after, reference) VALUES ('k1', 'deposit', 'acc_x', 'sys:deposits',"
            " 'cust:acc_x', 5, 10, 'd1')"
        )
    assert await scalar(db, "SELECT count(*) FROM transfers") == 1
