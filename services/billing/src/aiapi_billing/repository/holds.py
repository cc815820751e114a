"""The ``holds`` table: a request's money held from admission until its usage settles.

Admission itself is one statement, the ``admit_request`` function (migration 0002): it locks the
account row, applies the GCRA limits and takes the hold in one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from aiapi_billing.postings import Released
from aiapi_billing.repository import Conn, json_rows, rows_of

_ADMIT = "SELECT * FROM admit_request(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


_SETTLE_HOLDS = (
    "UPDATE holds h SET state = 'settled', closed_at = now()"  # noqa: S608 (no values)
    f" FROM ({rows_of((('request_id', 'text'), ('account_id', 'text')))}) AS s"
    " WHERE h.request_id = s.request_id AND h.account_id = s.account_id"
    " AND h.state = 'open' RETURNING h.request_id, h.amount, h.rate_tokens"
)


class AdmitParams(NamedTuple):
    """``admit_request``'s arguments, in its order."""

    request_id: str
    account_id: str
    model: str
    plan: str
    started_at: datetime
    hold: int
    tokens: int
    requests_per_minute: int
    tokens_per_minute: int
    ttl_s: int


class AdmitOutcome(NamedTuple):
    decision: str  # admit | rate_limited | insufficient_balance | account_inactive
    hold_id: str | None
    hold_amount: int | None
    available: int | None
    retry_after_s: int | None


async def admit(conn: Conn, params: AdmitParams) -> AdmitOutcome | None:
    """Run ``admit_request`` (in autocommit: the statement is its own transaction)."""
    cur = await conn.execute(_ADMIT, params)
    row = await cur.fetchone()
    return None if row is None else AdmitOutcome(*row)


class OpenHold(NamedTuple):
    model: str
    plan: str
    started_at: datetime
    amount: int


async def lock_open_hold(conn: Conn, hold_id: str, account_id: str) -> OpenHold | None:
    """The account's hold, locked, while it is open (the account row is locked first)."""
    cur = await conn.execute(
        "SELECT model, plan, started_at, amount FROM holds"
        " WHERE hold_id = %s AND account_id = %s AND state = 'open' FOR UPDATE",
        (hold_id, account_id),
    )
    row = await cur.fetchone()
    return None if row is None else OpenHold(str(row[0]), str(row[1]), row[2], int(row[3]))


async def extend_hold(conn: Conn, hold_id: str, extra: int, ttl: timedelta) -> None:
    """Grow the hold by ``extra`` (the account's holds grew already) and push its expiry back."""
    await conn.execute(
        "UPDATE holds SET amount = amount + %s, expires_at = now() + %s WHERE hold_id = %s",
        (extra, ttl, hold_id),
    )


async def settle_holds(
    conn: Conn, request_ids: Sequence[str], account_ids: Sequence[str]
) -> dict[str, Released]:
    """Close the open holds of these (request, account) pairs in one statement; what each held."""
    cur = await conn.execute(
        _SETTLE_HOLDS, (json_rows(zip(request_ids, account_ids, strict=True)),)
    )
    return {str(r[0]): Released(int(r[1]), int(r[2])) for r in await cur.fetchall()}


async def accounts_overdue(conn: Conn, limit: int) -> list[str]:
    """Accounts with an open hold or a live lease past its expiry (for the sweeper)."""
    cur = await conn.execute(
        "SELECT account_id FROM holds WHERE state = 'open' AND expires_at < now()"
        " UNION SELECT account_id FROM leases"
        " WHERE state IN ('open', 'closed') AND expires_at < now() LIMIT %s",
        (limit,),
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def expire_holds(conn: Conn, account_id: str) -> list[int]:
    """Expire the account's overdue open holds (its row is locked); what each held."""
    cur = await conn.execute(
        "UPDATE holds SET state = 'expired', closed_at = now()"
        " WHERE account_id = %s AND state = 'open' AND expires_at < now()"
        " RETURNING amount",
        (account_id,),
    )
    return [int(r[0]) for r in await cur.fetchall()]


async def open_hold(
    conn: Conn,
    *,
    request_id: str,
    account_id: str,
    model: str,
    plan: str,
    started_at: datetime,
    amount: int,
    ttl: timedelta,
) -> None:
    """A hold taken outside ``admit_request`` (a Message Batch's: its id is the request id); the
    account's holds total was raised in the same transaction."""
    await conn.execute(
        "INSERT INTO holds (hold_id, request_id, account_id, model, plan, started_at, amount,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now() + %s)",
        (request_id, request_id, account_id, model, plan, started_at, amount, ttl),
    )
