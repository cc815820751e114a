"""Admission and hold extension: the edge's one round trip before it sends a request upstream.

Admission is one statement, ``admit_request`` (migration 0002), run in autocommit: it locks the
account row, refuses a suspended account, gives a retried request id the hold it already has,
applies the GCRA limits (``ratelimit.py`` is their specification) and takes the hold, all under
that one lock and in one commit. Python computes only what needs the catalogue: the hold (worst
case at the model's price, the discount applied) and the limits: the account's terms in force
when the request started (its plan's version then, its own overrides laid over it).
"""

from __future__ import annotations

from datetime import timedelta

from aiapi_shared.admission import (
    AdmissionReply,
    AdmissionRequest,
    HoldExtensionReply,
    HoldExtensionRequest,
)
from aiapi_shared.pricing import discounted
from psycopg import OperationalError
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from aiapi_billing import pricing
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.price_book import PriceBook
from aiapi_billing.repository import accounts, holds, prices
from aiapi_billing.repository.holds import AdmitOutcome, AdmitParams


def _reply(row: AdmitOutcome, plan_name: str) -> AdmissionReply:
    """The edge's answer from ``admit_request``'s row."""
    decision, hold_id, hold_amount, available, retry_after_s = row
    if decision == "admit":
        return AdmissionReply(
            decision="admit", hold_id=hold_id, hold_amount=hold_amount, available=available
        )
    if decision == "rate_limited":
        return AdmissionReply(
            decision="rate_limited",
            retry_after_s=retry_after_s,
            message=f"the {plan_name} plan's rate limit is spent",
        )
    if decision == "insufficient_balance":
        return AdmissionReply(
            decision="insufficient_balance",
            available=available,
            message="the balance cannot cover this request",
        )
    return AdmissionReply(decision="account_inactive", message="the account is suspended")


class Admitter:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        catalogue: LiveCatalogue,
        prices: PriceBook,
        *,
        hold_ttl_s: int,
        admit_pool: AsyncConnectionPool | None = None,
    ) -> None:
        self._pool = pool
        # Autocommit connections without a checkout probe: one round trip per admission.
        self._admit_pool = admit_pool or pool
        self._catalogue = catalogue
        self._prices = prices
        self._ttl_s = hold_ttl_s
        self._ttl = timedelta(seconds=hold_ttl_s)

    async def admit(self, req: AdmissionRequest) -> AdmissionReply:
        if self._prices.stale:
            async with self._pool.connection(timeout=2.0) as conn:
                await self._prices.refresh(conn)
                await conn.commit()
        price = self._prices.price_at(req.model, req.started_at)
        if price is None:
            return AdmissionReply(decision="unknown_model", message=f"{req.model} is not priced")
        catalogue = self._catalogue.current
        try:
            terms = catalogue.terms(req.plan, req.account_id, req.started_at)
        except KeyError:
            return AdmissionReply(decision="account_inactive", message=f"no plan {req.plan}")
        hold = pricing.hold_nano(
            req.estimated_input_tokens,
            req.max_tokens,
            price,
            discount_bps=terms.discount_bps,
            multipliers=catalogue.cache_multipliers_bps,
            input_premium_bps=req.input_premium_bps,
            output_premium_bps=req.output_premium_bps,
        ) + discounted(req.server_tools_nano, terms.discount_bps)
        tokens = min(req.estimated_input_tokens + req.max_tokens, terms.tokens_per_minute)
        params = AdmitParams(req.request_id, req.account_id, req.model, req.plan, req.started_at,
                             hold, tokens, terms.requests_per_minute, terms.tokens_per_minute,
                             self._ttl_s)  # fmt: skip
        try:
            row = await self._run_admit(params)
        except UniqueViolation:
            # The same request id is being admitted for another account at this very moment.
            return AdmissionReply(decision="account_inactive", message="request id reused")
        return _reply(row, terms.plan.display_name)

    async def _run_admit(self, params: AdmitParams) -> AdmitOutcome:
        """Run ``admit_request``. The pool does not probe connections on checkout, so the first
        one found broken (PostgreSQL restarted) makes the pool probe all its idle ones, once,
        and the admission is retried. Retrying is safe: an admitted request id gets its hold."""
        for attempt in (1, 2):
            async with self._admit_pool.connection(timeout=2.0) as conn:
                try:
                    row = await holds.admit(conn, params)
                except OperationalError:
                    if attempt == 2 or not conn.broken:
                        raise
                    row = None
                if row is not None:
                    return row
            await self._admit_pool.check()  # the broken one went back; replace its siblings too
        raise AssertionError("unreachable")

    async def extend(self, req: HoldExtensionRequest) -> HoldExtensionReply:
        async with self._pool.connection(timeout=2.0) as conn, conn.transaction():
            await accounts.lock_account(conn, req.account_id)
            hold = await holds.lock_open_hold(conn, req.hold_id, req.account_id)
            if hold is None:
                return HoldExtensionReply(granted=False, message="the hold is no longer open")
            price = await prices.price_at(conn, hold.model, hold.started_at)
            if price is None:
                return HoldExtensionReply(
                    granted=False, hold_amount=hold.amount, message="unpriced"
                )
            catalogue = self._catalogue.current
            extra = pricing.extension_nano(
                req.additional_output_tokens,
                price,
                discount_bps=catalogue.terms(
                    hold.plan, req.account_id, hold.started_at
                ).discount_bps,
                multipliers=catalogue.cache_multipliers_bps,
            )
            if not await accounts.hold_more_if_covered(conn, req.account_id, extra):
                return HoldExtensionReply(
                    granted=False, hold_amount=hold.amount, message="the balance cannot cover more"
                )
            await holds.extend_hold(conn, req.hold_id, extra, self._ttl)
            return HoldExtensionReply(granted=True, hold_amount=hold.amount + extra)
