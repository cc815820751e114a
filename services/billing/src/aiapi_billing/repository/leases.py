"""The ``leases`` table: money and rate-limit slices lent to an edge replica (see ``lease_rules``).

Lock order is the ledger's: the account row, then its lease rows (several in lease id order).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aiapi_billing.lease_rules import LeaseState, Tally
from aiapi_billing.repository import Conn


async def clock_us(conn: Conn) -> int:
    """PostgreSQL's clock in microseconds: the one ``admit_request`` moves the same TATs with."""
    cur = await conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


class GrantedLease(NamedTuple):
    account_id: str
    granted: int
    requests: int
    tokens: int
    admit_until: datetime


async def find_lease(conn: Conn, lease_id: str) -> GrantedLease | None:
    """The lease granted under ``lease_id`` (to whichever account), if any."""
    cur = await conn.execute(
        "SELECT account_id, granted, requests, tokens, admit_until FROM leases WHERE lease_id = %s",
        (lease_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return GrantedLease(str(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4])


class NewLease(NamedTuple):
    """``insert_lease``'s columns, in its order."""

    lease_id: str
    account_id: str
    edge_id: str
    plan: str
    granted: int
    open_amount: int
    requests: int
    tokens: int
    admit_until: datetime
    expires_at: datetime


async def insert_lease(conn: Conn, lease: NewLease) -> None:
    """Record a granted lease (a lease id already used raises ``UniqueViolation``)."""
    await conn.execute(
        "INSERT INTO leases (lease_id, account_id, edge_id, plan, granted, open_amount,"
        " requests, tokens, admit_until, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        lease,
    )


async def lock_lease_state(conn: Conn, lease_id: str, account_id: str) -> LeaseState | None:
    """The account's lease's state, locked until commit; ``None`` if it has no such lease."""
    cur = await conn.execute(
        "SELECT state FROM leases WHERE lease_id = %s AND account_id = %s FOR UPDATE",
        (lease_id, account_id),
    )
    row = await cur.fetchone()
    return None if row is None else row[0]


async def top_up_lease(conn: Conn, lease_id: str, amount: int, ttl: timedelta) -> None:
    """Grow a live lease by ``amount`` and keep it from expiring before ``ttl`` from now."""
    # A closed lease's report already counted its reserved money: the top-up is for a request
    # it admitted, so that request's share (in its usage event) grows with it.
    await conn.execute(
        "UPDATE leases SET granted = granted + %(a)s, open_amount = open_amount + %(a)s,"
        " reserved = CASE WHEN state = 'closed' THEN reserved + %(a)s ELSE reserved END,"
        " expires_at = greatest(expires_at, clock_timestamp() + %(ttl)s)"
        " WHERE lease_id = %(id)s",
        {"a": amount, "ttl": ttl, "id": lease_id},
    )


class LeaseToClose(NamedTuple):
    tally: Tally
    plan: str
    requests: int
    tokens: int
    granted_at: datetime  # its slices were taken under the limits in force then


async def lock_lease_to_close(conn: Conn, lease_id: str, account_id: str) -> LeaseToClose | None:
    """The account's lease, locked, as closing reads it; ``None`` if it has no such lease."""
    cur = await conn.execute(
        "SELECT state, open_amount, settled_reserved, settled_count, admitted, plan,"
        " requests, tokens, created_at FROM leases"
        " WHERE lease_id = %s AND account_id = %s FOR UPDATE",
        (lease_id, account_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return LeaseToClose(_tally(row[:5]), str(row[5]), int(row[6]), int(row[7]), row[8])


async def close_lease(
    conn: Conn, lease_id: str, tally: Tally, *, admitted: int, reserved: int
) -> None:
    """Write a closing's outcome: the new state and amount held, and the edge's report."""
    await conn.execute(
        "UPDATE leases SET state = %s, open_amount = %s, admitted = %s, reserved = %s,"
        " closed_at = now() WHERE lease_id = %s",
        (tally.state, tally.open_amount, admitted, reserved, lease_id),
    )


def _tally(row: Sequence[Any]) -> Tally:
    state, open_amount, settled_reserved, settled_count, admitted = row
    return Tally(state, int(open_amount), int(settled_reserved), int(settled_count),
                 None if admitted is None else int(admitted))  # fmt: skip


async def lock_tallies(conn: Conn, pairs: Sequence[tuple[str, str]]) -> dict[str, Tally]:
    """Lock these (lease, account) leases in lease id order in one statement; their tallies."""
    cur = await conn.execute(
        "SELECT l.lease_id, l.state, l.open_amount, l.settled_reserved, l.settled_count,"
        " l.admitted FROM leases l JOIN unnest(%s::text[], %s::text[]) AS s(lease_id, account_id)"
        "   ON l.lease_id = s.lease_id AND l.account_id = s.account_id"
        " ORDER BY l.lease_id FOR UPDATE OF l",
        ([p[0] for p in pairs], [p[1] for p in pairs]),
    )
    return {str(r[0]): _tally(r[1:]) for r in await cur.fetchall()}


async def write_tallies(conn: Conn, tallies: dict[str, Tally]) -> None:
    """Write these leases' tallies back in one statement (their rows are locked)."""
    if not tallies:
        return
    ids = sorted(tallies)
    await conn.execute(
        "UPDATE leases l SET state = w.state, open_amount = w.open_amount,"
        " settled_reserved = w.settled_reserved, settled_count = w.settled_count"
        " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[])"
        "   AS w(lease_id, state, open_amount, settled_reserved, settled_count)"
        " WHERE l.lease_id = w.lease_id",
        (
            ids,
            [tallies[i].state for i in ids],
            [tallies[i].open_amount for i in ids],
            [tallies[i].settled_reserved for i in ids],
            [tallies[i].settled_count for i in ids],
        ),
    )


async def expire_leases(conn: Conn, account_id: str) -> list[int]:
    """Expire the account's overdue live leases (its row is locked); what each still held."""
    cur = await conn.execute(
        "UPDATE leases l SET state = 'expired', open_amount = 0,"
        " closed_at = coalesce(l.closed_at, now())"
        " FROM (SELECT lease_id, open_amount FROM leases WHERE account_id = %s"
        "       AND state IN ('open', 'closed') AND expires_at < now()"
        "       ORDER BY lease_id FOR UPDATE) old"
        " WHERE l.lease_id = old.lease_id RETURNING old.open_amount",
        (account_id,),
    )
    return [int(r[0]) for r in await cur.fetchall()]
