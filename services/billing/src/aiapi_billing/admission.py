"""Admission and hold extension: the edge's one round trip before it sends a request upstream.

One transaction per request: lock the account row, decide the rate limits (pure GCRA), then take
the hold in one conditional update (``available >= hold``) together with the new rate state.
A retried admission for the same request id gets the hold it already has, not a second one.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from aiapi_shared.admission import (
    AdmissionReply,
    AdmissionRequest,
    HoldExtensionReply,
    HoldExtensionRequest,
)
from aiapi_shared.catalogue import Catalogue
from psycopg_pool import AsyncConnectionPool

from aiapi_billing import pricing, ratelimit
from aiapi_billing.ledger import Conn, lock_account
from aiapi_billing.prices import PriceBook, price_at


class _Replay(Exception):
    """The request id already holds money: undo this attempt and answer with that hold."""


class Admitter:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        catalogue: Catalogue,
        prices: PriceBook,
        *,
        hold_ttl_s: int,
    ) -> None:
        self._pool = pool
        self._catalogue = catalogue
        self._prices = prices
        self._ttl = timedelta(seconds=hold_ttl_s)

    async def admit(self, req: AdmissionRequest) -> AdmissionReply:
        plan = self._catalogue.plan(req.plan)
        async with self._pool.connection(timeout=2.0) as conn:
            if self._prices.stale:
                await self._prices.refresh(conn)
                await conn.commit()
            price = self._prices.price_at(req.model, req.started_at)
            if price is None:
                return AdmissionReply(
                    decision="unknown_model", message=f"{req.model} is not priced"
                )
            hold = pricing.hold_nano(
                req.estimated_input_tokens,
                req.max_tokens,
                price,
                discount_bps=plan.discount_bps,
                multipliers=self._catalogue.cache_multipliers_bps,
            )
            tokens = min(req.estimated_input_tokens + req.max_tokens, plan.tokens_per_minute)
            try:
                async with conn.transaction():
                    return await self._admit_locked(conn, req, hold, tokens)
            except _Replay:
                return await self._replayed(conn, req)

    async def _admit_locked(
        self, conn: Conn, req: AdmissionRequest, hold: int, tokens: int
    ) -> AdmissionReply:
        plan = self._catalogue.plan(req.plan)
        account = await lock_account(conn, req.account_id)
        if account.status != "active":
            return AdmissionReply(decision="account_inactive", message="the account is suspended")
        now_us = time.time_ns() // 1000
        rate = ratelimit.decide(
            ratelimit.RateState(account.rpm_tat_us, account.tpm_tat_us),
            now_us,
            rpm=plan.requests_per_minute,
            tpm=plan.tokens_per_minute,
            tokens=tokens,
        )
        if not rate.allowed:
            return AdmissionReply(
                decision="rate_limited",
                retry_after_s=rate.retry_after_s,
                message=f"the {plan.display_name} plan's rate limit is spent",
            )
        cur = await conn.execute(
            "UPDATE accounts SET holds = holds + %s, rpm_tat_us = %s, tpm_tat_us = %s,"
            " version = version + 1, updated_at = now()"
            " WHERE account_id = %s AND credits - debits - holds >= %s"
            " RETURNING credits - debits - holds",
            (hold, rate.state.rpm_tat_us, rate.state.tpm_tat_us, req.account_id, hold),
        )
        taken = await cur.fetchone()
        if taken is None:
            return AdmissionReply(
                decision="insufficient_balance",
                available=account.totals.available,
                message="the balance cannot cover this request",
            )
        hold_id = f"hold_{uuid.uuid4().hex}"
        cur = await conn.execute(
            "INSERT INTO holds (hold_id, request_id, account_id, model, plan, started_at, amount,"
            " rate_tokens, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() + %s)"
            " ON CONFLICT (request_id) DO NOTHING RETURNING hold_id",
            (hold_id, req.request_id, req.account_id, req.model, req.plan, req.started_at, hold,
             tokens, self._ttl),
        )  # fmt: skip
        if await cur.fetchone() is None:
            raise _Replay
        return AdmissionReply(
            decision="admit", hold_id=hold_id, hold_amount=hold, available=int(taken[0])
        )

    async def _replayed(self, conn: Conn, req: AdmissionRequest) -> AdmissionReply:
        cur = await conn.execute(
            "SELECT h.hold_id, h.amount, a.credits - a.debits - a.holds FROM holds h"
            " JOIN accounts a USING (account_id) WHERE h.request_id = %s AND h.account_id = %s",
            (req.request_id, req.account_id),
        )
        row = await cur.fetchone()
        await conn.commit()
        if row is None:
            return AdmissionReply(decision="account_inactive", message="request id reused")
        return AdmissionReply(
            decision="admit", hold_id=str(row[0]), hold_amount=int(row[1]), available=int(row[2])
        )

    async def extend(self, req: HoldExtensionRequest) -> HoldExtensionReply:
        async with self._pool.connection(timeout=2.0) as conn, conn.transaction():
            await lock_account(conn, req.account_id)
            cur = await conn.execute(
                "SELECT model, plan, started_at, amount FROM holds"
                " WHERE hold_id = %s AND account_id = %s AND state = 'open' FOR UPDATE",
                (req.hold_id, req.account_id),
            )
            row = await cur.fetchone()
            if row is None:
                return HoldExtensionReply(granted=False, message="the hold is no longer open")
            model, plan_id, started_at, amount = row
            price = await price_at(conn, model, started_at)
            if price is None:
                return HoldExtensionReply(granted=False, hold_amount=amount, message="unpriced")
            extra = pricing.extension_nano(
                req.additional_output_tokens,
                price,
                discount_bps=self._catalogue.plan(plan_id).discount_bps,
                multipliers=self._catalogue.cache_multipliers_bps,
            )
            cur = await conn.execute(
                "UPDATE accounts SET holds = holds + %s, version = version + 1, updated_at = now()"
                " WHERE account_id = %s AND credits - debits - holds >= %s RETURNING 1",
                (extra, req.account_id, extra),
            )
            if await cur.fetchone() is None:
                return HoldExtensionReply(
                    granted=False, hold_amount=amount, message="the balance cannot cover more"
                )
            await conn.execute(
                "UPDATE holds SET amount = amount + %s, expires_at = now() + %s WHERE hold_id = %s",
                (extra, self._ttl, req.hold_id),
            )
            return HoldExtensionReply(granted=True, hold_amount=amount + extra)
