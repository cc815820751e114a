"""Lease grant, top-up and close: one transaction each, the account row locked first.

These run once per lease, not per request, so they are plain statements from Python; the rules
are ``leasing.py``'s. Lock order is the ledger's: the account row, then its lease row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiapi_shared.admission import (
    LeaseCloseReply,
    LeaseCloseRequest,
    LeaseGrantReply,
    LeaseGrantRequest,
    LeaseTopUpReply,
    LeaseTopUpRequest,
)
from aiapi_shared.catalogue import Catalogue
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from aiapi_billing import leasing
from aiapi_billing.ledger import Conn, lock_account

_NOW_US = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"


def _moment(now_us: int) -> datetime:
    return datetime.fromtimestamp(now_us / 1_000_000, UTC)


async def _now_us(conn: Conn) -> int:
    """PostgreSQL's clock: the one ``admit_request`` moves the same TATs with."""
    cur = await conn.execute(_NOW_US)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


class Leases:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        catalogue: Catalogue,
        *,
        hold_ttl_s: int,
        admit_for_s: float,
        share_bps: int,
    ) -> None:
        self._pool = pool
        self._catalogue = catalogue
        self._ttl = timedelta(seconds=hold_ttl_s)
        self._admit_for = timedelta(seconds=admit_for_s)
        self._share_bps = share_bps

    async def grant(self, req: LeaseGrantRequest) -> LeaseGrantReply:
        try:
            async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
                return await self._grant(conn, req)
        except UniqueViolation:
            # The same lease id granted to another account at this very moment: never share it.
            return LeaseGrantReply(decision="account_inactive", message="lease id reused")

    async def _grant(self, conn: Conn, req: LeaseGrantRequest) -> LeaseGrantReply:
        account = await lock_account(conn, req.account_id)
        now_us = await _now_us(conn)
        cur = await conn.execute(
            "SELECT account_id, granted, requests, tokens, admit_until FROM leases"
            " WHERE lease_id = %s",
            (req.lease_id,),
        )
        existing = await cur.fetchone()
        if existing is not None:  # a retry: the same grant, for what is left of its window
            return _same_grant(req, tuple(existing), now_us)
        if account.status != "active":
            return LeaseGrantReply(decision="account_inactive", message="the account is suspended")
        plan = self._catalogue.plan(req.plan)
        terms = leasing.grant_terms(
            leasing.GrantAsk(
                amount=req.amount,
                min_amount=req.min_amount,
                requests=req.requests,
                tokens=req.tokens,
                min_tokens=req.min_tokens,
                available=account.totals.available,
                rpm=plan.requests_per_minute,
                tpm=plan.tokens_per_minute,
                rpm_tat_us=account.rpm_tat_us,
                tpm_tat_us=account.tpm_tat_us,
                now_us=now_us,
            ),
            share_bps=self._share_bps,
        )
        if isinstance(terms, leasing.Decline):
            return LeaseGrantReply(decision="declined", message=terms.reason)
        await conn.execute(
            "UPDATE accounts SET holds = holds + %s, rpm_tat_us = %s, tpm_tat_us = %s,"
            " version = version + 1, updated_at = now() WHERE account_id = %s",
            (terms.amount, terms.rpm_tat_us, terms.tpm_tat_us, req.account_id),
        )
        admit_until = _moment(now_us) + self._admit_for
        await conn.execute(
            "INSERT INTO leases (lease_id, account_id, edge_id, plan, granted, open_amount,"
            " requests, tokens, admit_until, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (req.lease_id, req.account_id, req.edge_id, req.plan, terms.amount, terms.amount,
             terms.requests, terms.tokens, admit_until, admit_until + self._ttl),
        )  # fmt: skip
        return LeaseGrantReply(
            decision="granted",
            amount=terms.amount,
            requests=terms.requests,
            tokens=terms.tokens,
            admit_for_s=self._admit_for.total_seconds(),
        )

    async def top_up(self, req: LeaseTopUpRequest) -> LeaseTopUpReply:
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            account = await lock_account(conn, req.account_id)
            cur = await conn.execute(
                "SELECT state FROM leases WHERE lease_id = %s AND account_id = %s FOR UPDATE",
                (req.lease_id, req.account_id),
            )
            row = await cur.fetchone()
            live = row is not None and row[0] in leasing.LIVE_STATES
            if not live or account.totals.available < req.amount:
                return LeaseTopUpReply(granted=False)
            await conn.execute(
                "UPDATE accounts SET holds = holds + %s, version = version + 1, updated_at = now()"
                " WHERE account_id = %s",
                (req.amount, req.account_id),
            )
            # A closed lease's report already counted its reserved money: the top-up is for a
            # request it admitted, so that request's share (in its usage event) grows with it.
            await conn.execute(
                "UPDATE leases SET granted = granted + %(a)s, open_amount = open_amount + %(a)s,"
                " reserved = CASE WHEN state = 'closed' THEN reserved + %(a)s ELSE reserved END,"
                " expires_at = greatest(expires_at, clock_timestamp() + %(ttl)s)"
                " WHERE lease_id = %(id)s",
                {"a": req.amount, "ttl": self._ttl, "id": req.lease_id},
            )
            return LeaseTopUpReply(granted=True, amount=req.amount)

    async def close(self, req: LeaseCloseRequest) -> LeaseCloseReply:
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            await lock_account(conn, req.account_id)
            cur = await conn.execute(
                "SELECT state, open_amount, settled_reserved, settled_count, admitted, plan,"
                " requests, tokens FROM leases WHERE lease_id = %s AND account_id = %s FOR UPDATE",
                (req.lease_id, req.account_id),
            )
            row = await cur.fetchone()
            if row is None:
                return LeaseCloseReply(closed=False)
            state, open_amount, settled_reserved, settled_count, _, plan_id, requests, tokens = row
            if state != "open":  # closed before (a retry), settled or expired: nothing to do
                return LeaseCloseReply(closed=True, released=0)
            plan = self._catalogue.plan(str(plan_id))
            tally = leasing.Tally("open", int(open_amount), int(settled_reserved),
                                  int(settled_count), None)  # fmt: skip
            report = leasing.CloseReport(
                req.admitted_requests, req.reserved_amount, req.reserved_tokens
            )
            closing = leasing.close_terms(
                tally,
                report,
                requests=int(requests),
                tokens=int(tokens),
                rpm=plan.requests_per_minute,
                tpm=plan.tokens_per_minute,
            )
            await conn.execute(
                "UPDATE accounts SET holds = holds - %s, rpm_tat_us = rpm_tat_us - %s,"
                " tpm_tat_us = tpm_tat_us - %s, version = version + 1, updated_at = now()"
                " WHERE account_id = %s",
                (closing.released, closing.rpm_rewind_us, closing.tpm_rewind_us, req.account_id),
            )
            await conn.execute(
                "UPDATE leases SET state = %s, open_amount = %s, admitted = %s, reserved = %s,"
                " closed_at = now() WHERE lease_id = %s",
                (closing.tally.state, closing.tally.open_amount, req.admitted_requests,
                 req.reserved_amount, req.lease_id),
            )  # fmt: skip
            return LeaseCloseReply(closed=True, released=closing.released)


def _same_grant(req: LeaseGrantRequest, row: tuple[Any, ...], now_us: int) -> LeaseGrantReply:
    account_id, granted, requests, tokens, admit_until = row
    if account_id != req.account_id:
        return LeaseGrantReply(decision="account_inactive", message="lease id reused")
    left_s = max(0.0, (admit_until - _moment(now_us)).total_seconds())
    return LeaseGrantReply(
        decision="granted",
        amount=int(granted),
        requests=int(requests),
        tokens=int(tokens),
        admit_for_s=left_s,
    )
