"""The ledger's writes inside one transaction: lock an account, post a transfer, queue events.

Callers open the transaction (the message or request boundary commits); these functions only run
statements on the connection they are given. Lock order is always the account row first, then
its holds, so concurrent admissions, settlements and sweeps never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiapi_shared.events import Event
from psycopg import AsyncConnection

from aiapi_billing.notices import Totals

Conn = AsyncConnection[tuple[Any, ...]]

REVENUE = "sys:revenue"
DEPOSITS = "sys:deposits"
ADJUSTMENTS = "sys:adjustments"
PLAN_SALES = "sys:plan_sales"


def customer(account_id: str) -> str:
    return f"cust:{account_id}"


@dataclass(frozen=True)
class AccountRow:
    account_id: str
    status: str
    plan: str
    known: bool
    totals: Totals
    rpm_tat_us: int
    tpm_tat_us: int


_SELECT_LOCKED = (
    "SELECT status, plan, known, credits, debits, holds, version, rpm_tat_us, tpm_tat_us"
    " FROM accounts WHERE account_id = %s FOR UPDATE"
)


async def lock_account(conn: Conn, account_id: str) -> AccountRow:
    """The account's row, locked until commit; an account never heard of starts active/basic."""
    cur = await conn.execute(_SELECT_LOCKED, (account_id,))
    row = await cur.fetchone()
    if row is None:
        await conn.execute(
            "INSERT INTO accounts (account_id) VALUES (%s) ON CONFLICT DO NOTHING", (account_id,)
        )
        cur = await conn.execute(_SELECT_LOCKED, (account_id,))
        row = await cur.fetchone()
        assert row is not None
    status, plan, known, credits, debits, holds, version, rpm, tpm = row
    return AccountRow(
        account_id,
        str(status),
        str(plan),
        bool(known),
        Totals(int(credits), int(debits), int(holds), int(version)),
        int(rpm),
        int(tpm),
    )


async def apply_totals(
    conn: Conn, account_id: str, *, credit: int = 0, debit: int = 0, hold_delta: int = 0
) -> Totals:
    """Move the running totals (the row is already locked) and bump the version."""
    cur = await conn.execute(
        "UPDATE accounts SET credits = credits + %s, debits = debits + %s, holds = holds + %s,"
        " version = version + 1, updated_at = now() WHERE account_id = %s"
        " RETURNING credits, debits, holds, version",
        (credit, debit, hold_delta, account_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return Totals(*(int(v) for v in row))


@dataclass(frozen=True)
class TransferSpec:
    key: str
    kind: str
    account_id: str
    amount: int  # signed, from the customer's side: positive credits the account
    counterpart: str
    reference: str
    memo: str = ""
    actor: str = "billing"


async def insert_transfer(conn: Conn, spec: TransferSpec, balance_after: int) -> int | None:
    """Record the transfer once; ``None`` when its key was already used (a replay)."""
    cust = customer(spec.account_id)
    source, target = (spec.counterpart, cust) if spec.amount > 0 else (cust, spec.counterpart)
    cur = await conn.execute(
        "INSERT INTO transfers (transfer_key, kind, account_id, from_account, to_account, amount,"
        " balance_after, reference, memo, actor) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (transfer_key) DO NOTHING RETURNING id",
        (
            spec.key,
            spec.kind,
            spec.account_id,
            source,
            target,
            abs(spec.amount),
            balance_after,
            spec.reference,
            spec.memo,
            spec.actor,
        ),
    )
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def post_transfer(
    conn: Conn, spec: TransferSpec, before: Totals
) -> tuple[int, Totals] | None:
    """Post a non-zero transfer and move the totals; ``None`` if the key was already posted."""
    assert spec.amount != 0
    transfer_id = await insert_transfer(conn, spec, before.balance + spec.amount)
    if transfer_id is None:
        return None
    credit, debit = (spec.amount, 0) if spec.amount > 0 else (0, -spec.amount)
    after = await apply_totals(conn, spec.account_id, credit=credit, debit=debit)
    return transfer_id, after


async def queue_events(conn: Conn, events: Sequence[Event]) -> None:
    """Write events to the outbox in the caller's transaction; the relay publishes them."""
    if not events:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO outbox (event_id, subject, payload) VALUES (%s, %s, %s)",
            [(e.event_id, e.subject, e.to_json()) for e in events],
        )
