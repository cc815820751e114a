"""The ``leases`` table: money and rate-limit slices lent to an edge replica (see ``lease_rules``).

Lock order is the ledger's: the account row, then its lease rows (several in lease id order).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aiapi_billing.lease_rules import Closing, Grant, LeaseState, Tally
from aiapi_billing.ledger import AccountRow
from aiapi_billing.repository import Conn, accounts


class GrantedLease(NamedTuple):
    account_id: str
    granted: int
    requests: int
    tokens: int
    admit_until: datetime


class GrantContext(NamedTuple):
    account: AccountRow
    now_us: int
    existing: GrantedLease | None  # the lease granted under this id already (a retry)


async def lock_for_grant(conn: Conn, account_id: str, lease_id: str) -> GrantContext | None:
    """One statement for what a grant decides on: the account's row (locked until commit),
    PostgreSQL's clock and the lease already granted under ``lease_id`` if any (not locked: a
    retry only reads it). ``None`` when the account has no row yet."""
    cur = await conn.execute(
        # The clock is PostgreSQL's, in microseconds: the one ``admit_request`` moves TATs with.
        "SELECT a.status, a.plan, a.known, a.credits, a.debits, a.holds, a.version,"
        " a.rpm_tat_us, a.tpm_tat_us, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,"
        " l.account_id, l.granted, l.requests, l.tokens, l.admit_until"
        " FROM accounts a LEFT JOIN leases l ON l.lease_id = %s"
        " WHERE a.account_id = %s FOR UPDATE OF a",
        (lease_id, account_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    existing = None
    if row[10] is not None:
        existing = GrantedLease(str(row[10]), int(row[11]), int(row[12]), int(row[13]), row[14])
    return GrantContext(accounts.account_row(account_id, row[:9]), int(row[9]), existing)


class NewLease(NamedTuple):
    """``grant_lease``'s lease columns, in its order."""

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


async def grant_lease(conn: Conn, lease: NewLease, grant: Grant) -> None:
    """A granted lease, in one statement: its money joins the account's holds, its slices move
    the account's TATs (the row is locked), and its row is inserted (a lease id already used
    raises ``UniqueViolation``)."""
    await conn.execute(
        "WITH took AS (UPDATE accounts SET holds = holds + %s, rpm_tat_us = %s, tpm_tat_us = %s,"
        "   version = version + 1, updated_at = now() WHERE account_id = %s)"
        " INSERT INTO leases (lease_id, account_id, edge_id, plan, granted, open_amount,"
        " requests, tokens, admit_until, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (grant.amount, grant.rpm_tat_us, grant.tpm_tat_us, lease.account_id, *lease),
    )


async def renew_lease(
    conn: Conn,
    account_id: str,
    lease_id: str,
    added: Grant,
    admit_until: datetime,
    expires_at: datetime,
) -> None:
    """A renewed lease, in one statement: what it adds joins the account's holds and the lease,
    the account's TATs become the renewal's, and the lease's window moves on (both rows are
    locked)."""
    await conn.execute(
        "WITH took AS (UPDATE accounts SET holds = holds + %(amount)s, rpm_tat_us = %(rpm)s,"
        "   tpm_tat_us = %(tpm)s, version = version + 1, updated_at = now()"
        "   WHERE account_id = %(account)s)"
        " UPDATE leases SET granted = granted + %(amount)s, open_amount = open_amount + %(amount)s,"
        " requests = requests + %(requests)s, tokens = tokens + %(tokens)s,"
        " admit_until = %(until)s, expires_at = greatest(expires_at, %(expires)s)"
        " WHERE lease_id = %(lease)s",
        {"amount": added.amount, "rpm": added.rpm_tat_us, "tpm": added.tpm_tat_us,
         "account": account_id, "requests": added.requests, "tokens": added.tokens,
         "until": admit_until, "expires": expires_at, "lease": lease_id},
    )  # fmt: skip


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


class LockedLease(NamedTuple):
    account: AccountRow | None  # None: the account has no row (then it has no lease either)
    now_us: int
    lease: LeaseToClose | None  # None: the account has no such lease


async def lock_account_and_lease(conn: Conn, account_id: str, lease_id: str) -> LockedLease:
    """The account's row, then its lease's, locked in that order (the ledger's) until commit,
    with PostgreSQL's clock: two statements sent together (in a pipeline, one round trip)."""
    account_cur = await conn.execute(
        "SELECT status, plan, known, credits, debits, holds, version, rpm_tat_us, tpm_tat_us,"
        " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
        " FROM accounts WHERE account_id = %s FOR UPDATE",
        (account_id,),
    )
    lease_cur = await conn.execute(
        "SELECT state, open_amount, settled_reserved, settled_count, admitted, plan,"
        " requests, tokens, created_at FROM leases"
        " WHERE lease_id = %s AND account_id = %s FOR UPDATE",
        (lease_id, account_id),
    )
    account_row, lease_row = await account_cur.fetchone(), await lease_cur.fetchone()
    if account_row is None:
        return LockedLease(None, 0, None)
    account = accounts.account_row(account_id, account_row[:9])
    lease = None
    if lease_row is not None:
        lease = LeaseToClose(_tally(lease_row[:5]), str(lease_row[5]), int(lease_row[6]),
                             int(lease_row[7]), lease_row[8])  # fmt: skip
    return LockedLease(account, int(account_row[9]), lease)


async def close_lease(
    conn: Conn,
    account_id: str,
    lease_id: str,
    closing: Closing,
    *,
    admitted: int,
    reserved: int,
) -> None:
    """Write a closing's outcome in one statement: what it released leaves the account's holds
    and the unused slices move its TATs back; the lease's new state, amount held and the edge's
    report (both rows are locked)."""
    tally = closing.tally
    await conn.execute(
        "WITH back AS (UPDATE accounts SET holds = holds - %(released)s,"
        "   rpm_tat_us = rpm_tat_us - %(rpm)s, tpm_tat_us = tpm_tat_us - %(tpm)s,"
        "   version = version + 1, updated_at = now() WHERE account_id = %(account)s)"
        " UPDATE leases SET state = %(state)s, open_amount = %(open)s, admitted = %(admitted)s,"
        " reserved = %(reserved)s, closed_at = now() WHERE lease_id = %(lease)s",
        {"released": closing.released, "rpm": closing.rpm_rewind_us,
         "tpm": closing.tpm_rewind_us, "account": account_id, "state": tally.state,
         "open": tally.open_amount, "admitted": admitted, "reserved": reserved,
         "lease": lease_id},
    )  # fmt: skip


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
