"""The ``transfers`` table: the ledger's entries, each recorded once under its key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiapi_billing.ledger import TransferSpec
from aiapi_billing.notices import Totals
from aiapi_billing.repository import Conn, insert_rows, json_rows
from aiapi_billing.repository.accounts import apply_totals


async def insert_transfer(conn: Conn, spec: TransferSpec, balance_after: int) -> int | None:
    """Record the transfer once; ``None`` when its key was already used (a replay)."""
    source, target = spec.ends()
    cur = await conn.execute(
        "INSERT INTO transfers (transfer_key, kind, account_id, from_account, to_account, amount,"
        " balance_after, reference, memo, actor) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (transfer_key) DO NOTHING RETURNING id",
        (spec.key, spec.kind, spec.account_id, source, target, abs(spec.amount), balance_after,
         spec.reference, spec.memo, spec.actor),
    )  # fmt: skip
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def post_transfer(
    conn: Conn, spec: TransferSpec, before: Totals
) -> tuple[int, Totals] | None:
    """Post a non-zero transfer and move the totals (the account row is locked); ``None`` if the
    key was already posted."""
    assert spec.amount != 0
    transfer_id = await insert_transfer(conn, spec, before.balance + spec.amount)
    if transfer_id is None:
        return None
    credit, debit = (spec.amount, 0) if spec.amount > 0 else (0, -spec.amount)
    after = await apply_totals(conn, spec.account_id, credit=credit, debit=debit)
    return transfer_id, after


_TRANSFER_COLUMNS = (
    ("transfer_key", "text"), ("kind", "text"), ("account_id", "text"), ("from_account", "text"),
    ("to_account", "text"), ("amount", "bigint"), ("balance_after", "bigint"),
    ("reference", "text"), ("memo", "text"), ("actor", "text"),
)  # fmt: skip
_INSERT_TRANSFERS = insert_rows(
    "transfers", _TRANSFER_COLUMNS, "ON CONFLICT (transfer_key) DO NOTHING"
)


def _transfer_row(spec: TransferSpec, balance_after: int) -> tuple[Any, ...]:
    source, target = spec.ends()
    return (spec.key, spec.kind, spec.account_id, source, target, abs(spec.amount),
            balance_after, spec.reference, spec.memo, spec.actor)  # fmt: skip


async def insert_transfers(conn: Conn, rows: Sequence[tuple[TransferSpec, int]]) -> int:
    """Record many transfers (spec, balance after) in one statement, in their order; returns
    how many were new."""
    if not rows:
        return 0
    document = json_rows(_transfer_row(spec, after) for spec, after in rows)
    cur = await conn.execute(_INSERT_TRANSFERS, (document,))
    return cur.rowcount


async def transfer_id(conn: Conn, key: str) -> int | None:
    """The id of the transfer posted under ``key``, if any."""
    cur = await conn.execute("SELECT id FROM transfers WHERE transfer_key = %s", (key,))
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def transfer_exists(conn: Conn, key: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM transfers WHERE transfer_key = %s", (key,))
    return await cur.fetchone() is not None


async def account_transfer_amount(conn: Conn, key: str, account_id: str) -> int | None:
    """What the account's transfer under ``key`` moved, if it was posted."""
    cur = await conn.execute(
        "SELECT amount FROM transfers WHERE transfer_key = %s AND account_id = %s",
        (key, account_id),
    )
    row = await cur.fetchone()
    return None if row is None else int(row[0])
