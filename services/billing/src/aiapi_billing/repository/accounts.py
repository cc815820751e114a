"""The ``accounts`` rows: billing's copy of each account, its running totals and GCRA state.

Lock order everywhere is the account row first, then its holds and leases; several rows are
locked in id order. So concurrent admissions, settlements, lease calls and sweeps never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiapi_billing.ledger import AccountRow, TotalsMove
from aiapi_billing.notices import Totals
from aiapi_billing.repository import Conn

# ``account_row`` reads these columns, in this order (as ``repository/leases.py`` does too).
_SELECT_LOCKED = (
    "SELECT status, plan, known, credits, debits, holds, version, rpm_tat_us, tpm_tat_us"
    " FROM accounts WHERE account_id = %s FOR UPDATE"
)
# Many rows locked in one order (by id) by everyone who locks more than one: no deadlock.
_SELECT_MANY_LOCKED = (
    "SELECT account_id, status, plan, known, credits, debits, holds, version, rpm_tat_us,"
    " tpm_tat_us FROM accounts WHERE account_id = ANY(%s) ORDER BY account_id FOR UPDATE"
)


def account_row(account_id: str, row: Sequence[Any]) -> AccountRow:
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
    return account_row(account_id, row)


async def lock_accounts(conn: Conn, account_ids: Sequence[str]) -> dict[str, AccountRow]:
    """Several accounts' rows, locked in id order until commit (unknown ones created first)."""
    ids = sorted(set(account_ids))
    cur = await conn.execute(_SELECT_MANY_LOCKED, (ids,))
    rows = {str(r[0]): account_row(str(r[0]), r[1:]) for r in await cur.fetchall()}
    missing = [a for a in ids if a not in rows]
    if missing:
        await conn.execute(
            "INSERT INTO accounts (account_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (missing,),
        )
        cur = await conn.execute(_SELECT_MANY_LOCKED, (missing,))
        rows.update({str(r[0]): account_row(str(r[0]), r[1:]) for r in await cur.fetchall()})
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


async def hold_more_if_covered(conn: Conn, account_id: str, amount: int) -> bool:
    """Add ``amount`` to the holds only if the available balance covers it (a hold extension)."""
    cur = await conn.execute(
        "UPDATE accounts SET holds = holds + %s, version = version + 1, updated_at = now()"
        " WHERE account_id = %s AND credits - debits - holds >= %s RETURNING 1",
        (amount, account_id, amount),
    )
    return await cur.fetchone() is not None


async def hold_more(conn: Conn, account_id: str, amount: int) -> None:
    """Add ``amount`` to the holds (the row is locked and the caller checked the balance)."""
    await conn.execute(
        "UPDATE accounts SET holds = holds + %s, version = version + 1, updated_at = now()"
        " WHERE account_id = %s",
        (amount, account_id),
    )


async def set_plan(conn: Conn, account_id: str, plan: str) -> None:
    await conn.execute("UPDATE accounts SET plan = %s WHERE account_id = %s", (plan, account_id))


async def learn_plan(conn: Conn, account_id: str, plan: str) -> None:
    """The accounts service says the account exists (or changed plan): record it as known."""
    await conn.execute(
        "INSERT INTO accounts (account_id, plan, known) VALUES (%s, %s, true)"
        " ON CONFLICT (account_id) DO UPDATE SET plan = EXCLUDED.plan, known = true",
        (account_id, plan),
    )


async def learn_status(conn: Conn, account_id: str, status: str) -> None:
    """The accounts service changed the account's status: record it as known."""
    await conn.execute(
        "INSERT INTO accounts (account_id, status, known) VALUES (%s, %s, true)"
        " ON CONFLICT (account_id) DO UPDATE SET status = EXCLUDED.status, known = true",
        (account_id, status),
    )
