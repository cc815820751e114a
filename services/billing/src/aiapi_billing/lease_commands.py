"""Lease grant, renewal, top-up and close, as the edge asks for them: one transaction each.

These run once per lease (or per renewal), not per request. Each locks the account row first,
then its lease row (the ledger's lock order), decides with ``lease_rules.py`` and writes through
``repository/leases.py``. Grant, renewal and close are two round trips to PostgreSQL each: the
transaction's start and its locking reads go together in a pipeline, then its one write and the
commit (what the account and the lease become is one statement).
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
from aiapi_billing.ledger import AccountRow
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
            async with (
                self._pool.connection(timeout=5.0) as conn,
                conn.pipeline(),
                conn.transaction(),
            ):
                if req.renew:
                    return await self._renew(conn, req)
                return await self._grant(conn, req)
        except UniqueViolation:
            # The same lease id granted to another account at this very moment: never share it.
            return LeaseGrantReply(decision="account_inactive", message="lease id reused")

    def _ask(
        self, req: LeaseGrantRequest, account: AccountRow, now_us: int
    ) -> lease_rules.GrantAsk | LeaseGrantReply:
        """What the rules decide on, or the refusal when the account or its plan cannot lease."""
        if account.status != "active":
            return LeaseGrantReply(decision="account_inactive", message="the account is suspended")
        try:
            limits = self._catalogue.current.terms(req.plan, req.account_id, _moment(now_us))
        except KeyError:
            return LeaseGrantReply(decision="account_inactive", message=f"no plan {req.plan}")
        return lease_rules.GrantAsk(
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
        )

    async def _grant(self, conn: Conn, req: LeaseGrantRequest) -> LeaseGrantReply:
        context = await leases.lock_for_grant(conn, req.account_id, req.lease_id)
        if context is None:  # an account never heard of: its row first (then it has no lease)
            await accounts.lock_account(conn, req.account_id)
            context = await leases.lock_for_grant(conn, req.account_id, req.lease_id)
            assert context is not None
        account, now_us, existing = context
        if existing is not None:  # a retry: the same grant, for what is left of its window
            return _same_grant(req, existing, now_us)
        ask = self._ask(req, account, now_us)
        if isinstance(ask, LeaseGrantReply):
            return ask
        terms = lease_rules.grant_terms(ask, share_bps=self._share_bps)
        if isinstance(terms, lease_rules.Decline):
            return LeaseGrantReply(decision="declined", message=terms.reason)
        admit_until = _moment(now_us) + self._admit_for
        lease = NewLease(req.lease_id, req.account_id, req.edge_id, req.plan, terms.amount,
                         terms.amount, terms.requests, terms.tokens, admit_until,
                         admit_until + self._ttl)  # fmt: skip
        await leases.grant_lease(conn, lease, terms)
        return LeaseGrantReply(
            decision="granted",
            amount=terms.amount,
            requests=terms.requests,
            tokens=terms.tokens,
            admit_for_s=self._admit_for.total_seconds(),
        )

    async def _renew(self, conn: Conn, req: LeaseGrantRequest) -> LeaseGrantReply:
        """Grow an open lease in place and move its window on (docs/billing.md, Leases): what a
        close by the edge's report and a new grant would give, in one transaction instead of two
        and with no second lease."""
        account, now_us, lease = await leases.lock_account_and_lease(
            conn, req.account_id, req.lease_id
        )
        if account is None or lease is None or lease.tally.state != "open":
            return LeaseGrantReply(decision="declined", message="no open lease to renew")
        ask = self._ask(req, account, now_us)
        if isinstance(ask, LeaseGrantReply):
            return ask
        # Its slices were taken under the limits of its grant: renewed under the same, or not.
        then = self._catalogue.current.terms(lease.plan, req.account_id, lease.granted_at)
        same = (then.requests_per_minute, then.tokens_per_minute) == (ask.rpm, ask.tpm)
        if lease.plan != req.plan or not same:
            return LeaseGrantReply(decision="declined", message="the plan's terms changed")
        report = lease_rules.CloseReport(
            req.admitted_requests, req.reserved_amount, req.reserved_tokens
        )
        unused = lease_rules.unused_at(
            lease.tally, report, requests=lease.requests, tokens=lease.tokens
        )
        added = lease_rules.renew_terms(ask, unused, share_bps=self._share_bps)
        if isinstance(added, lease_rules.Decline):
            return LeaseGrantReply(decision="declined", message=added.reason)
        admit_until = _moment(now_us) + self._admit_for
        await leases.renew_lease(
            conn, req.account_id, req.lease_id, added, admit_until, admit_until + self._ttl
        )
        return LeaseGrantReply(
            decision="granted",
            amount=added.amount,
            requests=added.requests,
            tokens=added.tokens,
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
        async with (
            self._pool.connection(timeout=5.0) as conn,
            conn.pipeline(),
            conn.transaction(),
        ):
            _, _, lease = await leases.lock_account_and_lease(conn, req.account_id, req.lease_id)
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
            await leases.close_lease(
                conn,
                req.account_id,
                req.lease_id,
                closing,
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
