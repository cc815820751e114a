"""Lease grant, top-up and close, as the edge asks for them: one transaction each.

These run once per lease, not per request. Each locks the account row first, then its lease row
(the ledger's lock order), decides with ``lease_rules.py`` and writes through
``repository/leases.py`` and ``repository/accounts.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiapi_shared.admission import (
    LeaseCloseReply,
    LeaseCloseRequest,
    LeaseGrantReply,
    LeaseGrantRequest,
    LeaseTopUpReply,
    LeaseTopUpRequest,
)
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from aiapi_billing import lease_rules
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.repository import Conn, accounts, leases
from aiapi_billing.repository.leases import GrantedLease, NewLease


def _moment(now_us: int) -> datetime:
    return datetime.fromtimestamp(now_us / 1_000_000, UTC)


class LeaseCommands:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        catalogue: LiveCatalogue,
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
        account = await accounts.lock_account(conn, req.account_id)
        now_us = await leases.clock_us(conn)
        existing = await leases.find_lease(conn, req.lease_id)
        if existing is not None:  # a retry: the same grant, for what is left of its window
            return _same_grant(req, existing, now_us)
        if account.status != "active":
            return LeaseGrantReply(decision="account_inactive", message="the account is suspended")
        try:
            limits = self._catalogue.current.terms(req.plan, req.account_id, _moment(now_us))
        except KeyError:
            return LeaseGrantReply(decision="account_inactive", message=f"no plan {req.plan}")
        terms = lease_rules.grant_terms(
            lease_rules.GrantAsk(
                amount=req.amount,
                min_amount=req.min_amount,
                requests=req.requests,
                tokens=req.tokens,
                min_tokens=req.min_tokens,
                available=account.totals.available,
                rpm=limits.requests_per_minute,
                tpm=limits.tokens_per_minute,
                rpm_tat_us=account.rpm_tat_us,
                tpm_tat_us=account.tpm_tat_us,
                now_us=now_us,
            ),
            share_bps=self._share_bps,
        )
        if isinstance(terms, lease_rules.Decline):
            return LeaseGrantReply(decision="declined", message=terms.reason)
        await accounts.take_lease(
            conn, req.account_id, terms.amount, terms.rpm_tat_us, terms.tpm_tat_us
        )
        admit_until = _moment(now_us) + self._admit_for
        await leases.insert_lease(
            conn,
            NewLease(req.lease_id, req.account_id, req.edge_id, req.plan, terms.amount,
                     terms.amount, terms.requests, terms.tokens, admit_until,
                     admit_until + self._ttl),
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
            account = await accounts.lock_account(conn, req.account_id)
            state = await leases.lock_lease_state(conn, req.lease_id, req.account_id)
            live = state is not None and state in lease_rules.LIVE_STATES
            if not live or account.totals.available < req.amount:
                return LeaseTopUpReply(granted=False)
            await accounts.hold_more(conn, req.account_id, req.amount)
            await leases.top_up_lease(conn, req.lease_id, req.amount, self._ttl)
            return LeaseTopUpReply(granted=True, amount=req.amount)

    async def close(self, req: LeaseCloseRequest) -> LeaseCloseReply:
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            await accounts.lock_account(conn, req.account_id)
            lease = await leases.lock_lease_to_close(conn, req.lease_id, req.account_id)
            if lease is None:
                return LeaseCloseReply(closed=False)
            if lease.tally.state != "open":  # closed before (a retry), settled or expired
                return LeaseCloseReply(closed=True, released=0)
            limits = self._catalogue.current.terms(lease.plan, req.account_id, lease.granted_at)
            report = lease_rules.CloseReport(
                req.admitted_requests, req.reserved_amount, req.reserved_tokens
            )
            closing = lease_rules.close_terms(
                lease.tally,
                report,
                requests=lease.requests,
                tokens=lease.tokens,
                rpm=limits.requests_per_minute,
                tpm=limits.tokens_per_minute,
            )
            await accounts.give_back_lease(
                conn, req.account_id, closing.released, closing.rpm_rewind_us, closing.tpm_rewind_us
            )
            await leases.close_lease(
                conn,
                req.lease_id,
                closing.tally,
                admitted=req.admitted_requests,
                reserved=req.reserved_amount,
            )
            return LeaseCloseReply(closed=True, released=closing.released)


def _same_grant(req: LeaseGrantRequest, existing: GrantedLease, now_us: int) -> LeaseGrantReply:
    if existing.account_id != req.account_id:
        return LeaseGrantReply(decision="account_inactive", message="lease id reused")
    left_s = max(0.0, (existing.admit_until - _moment(now_us)).total_seconds())
    return LeaseGrantReply(
        decision="granted",
        amount=existing.granted,
        requests=existing.requests,
        tokens=existing.tokens,
        admit_for_s=left_s,
    )
