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
# Many rows locked in one order (by id) by everyone who locks more than one: no deadlock.
_SELECT_MANY_LOCKED = (
    "SELECT account_id, status, plan, known, credits, debits, holds, version, rpm_tat_us,"
    " tpm_tat_us FROM accounts WHERE account_id = ANY(%s) ORDER BY account_id FOR UPDATE"
)


def _account_row(account_id: str, row: Sequence[Any]) -> AccountRow:
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
    return _account_row(account_id, row)


async def lock_accounts(conn: Conn, account_ids: Sequence[str]) -> dict[str, AccountRow]:
    """Several accounts' rows, locked in id order until commit (unknown ones created first)."""
    ids = sorted(set(account_ids))
    cur = await conn.execute(_SELECT_MANY_LOCKED, (ids,))
    rows = {str(r[0]): _account_row(str(r[0]), r[1:]) for r in await cur.fetchall()}
    missing = [a for a in ids if a not in rows]
    if missing:
        await conn.execute(
            "INSERT INTO accounts (account_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (missing,),
        )
        cur = await conn.execute(_SELECT_MANY_LOCKED, (missing,))
        rows.update({str(r[0]): _account_row(str(r[0]), r[1:]) for r in await cur.fetchall()})
    return rows


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


@dataclass(frozen=True)
class TotalsMove:
    """One account's share of a batch: what its running totals move by, all at once."""

    account_id: str
    debit: int = 0
    hold_delta: int = 0
    tpm_tat_delta_us: int = 0


async def move_totals(conn: Conn, moves: Sequence[TotalsMove]) -> dict[str, Totals]:
    """Apply many accounts' moves in one statement (rows already locked); one version bump each."""
    if not moves:
        return {}
    cur = await conn.execute(
        "UPDATE accounts a SET debits = a.debits + m.debit, holds = a.holds + m.hold_delta,"
        " tpm_tat_us = a.tpm_tat_us + m.tpm_delta, version = a.version + 1, updated_at = now()"
        " FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[])"
        "   AS m(account_id, debit, hold_delta, tpm_delta)"
        " WHERE a.account_id = m.account_id"
        " RETURNING a.account_id, a.credits, a.debits, a.holds, a.version",
        (
            [m.account_id for m in moves],
            [m.debit for m in moves],
            [m.hold_delta for m in moves],
            [m.tpm_tat_delta_us for m in moves],
        ),
    )
    return {str(r[0]): Totals(*(int(v) for v in r[1:])) for r in await cur.fetchall()}


async def insert_transfers(conn: Conn, rows: Sequence[tuple[TransferSpec, int]]) -> int:
    """Record many transfers (spec, balance after) in one statement; returns how many were new."""
    if not rows:
        return 0
    columns: list[list[Any]] = [[] for _ in range(10)]
    for spec, balance_after in rows:
        cust = customer(spec.account_id)
        source, target = (spec.counterpart, cust) if spec.amount > 0 else (cust, spec.counterpart)
        values = (spec.key, spec.kind, spec.account_id, source, target, abs(spec.amount),
                  balance_after, spec.reference, spec.memo, spec.actor)  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    cur = await conn.execute(
        "INSERT INTO transfers (transfer_key, kind, account_id, from_account, to_account, amount,"
        " balance_after, reference, memo, actor) SELECT * FROM unnest(%s::text[], %s::text[],"
        " %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[],"
        " %s::text[]) ON CONFLICT (transfer_key) DO NOTHING",
        columns,
    )
    return cur.rowcount


async def queue_events(conn: Conn, events: Sequence[Event]) -> None:
    """Write events to the outbox in the caller's transaction; the relay publishes them."""
    if not events:
        return
    await conn.execute(
        "INSERT INTO outbox (event_id, subject, payload)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[])",
        (
            [e.event_id for e in events],
            [e.subject for e in events],
            [e.to_json() for e in events],
        ),
    )
