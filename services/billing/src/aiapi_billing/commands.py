"""Operator adjustments and plan purchases: money moved on request, each idempotent by its cause."""

from __future__ import annotations

from dataclasses import dataclass

from aiapi_shared.billing_api import (
    AdjustCommand,
    AdjustReply,
    PurchasePlanCommand,
    PurchasePlanReply,
)
from aiapi_shared.events import PlanPurchased

from aiapi_billing.errors import BillingError, InsufficientBalance
from aiapi_billing.ledger import ADJUSTMENTS, PLAN_SALES, TransferSpec
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.notices import balance_events
from aiapi_billing.repository import Conn, accounts, outbox, transfers

# The ledger's amounts and totals are PostgreSQL bigints of nano-USD (about 9.2 billion USD).
LEDGER_MAX = 2**63 - 1


@dataclass(frozen=True)
class Commands:
    catalogue: LiveCatalogue
    low_threshold: int

    async def adjust(self, conn: Conn, cmd: AdjustCommand) -> AdjustReply:
        if cmd.amount == 0:
            raise BillingError("an adjustment moves a non-zero amount")
        account = await accounts.lock_account(conn, cmd.account_id)
        before = account.totals
        credits, debits = before.credits + max(cmd.amount, 0), before.debits + max(-cmd.amount, 0)
        if max(credits, debits) > LEDGER_MAX:
            raise BillingError("the adjustment would take the account past what the ledger holds")
        key = f"adjustment:{cmd.account_id}:{cmd.idempotency_key}"
        spec = TransferSpec(
            key=key,
            kind="adjustment",
            account_id=cmd.account_id,
            amount=cmd.amount,
            counterpart=ADJUSTMENTS,
            reference=cmd.idempotency_key,
            memo=cmd.reason,
            actor=cmd.actor,
        )
        posted = await transfers.post_transfer(conn, spec, account.totals)
        if posted is None:
            replayed = await transfers.transfer_id(conn, key)
            assert replayed is not None
            totals = account.totals
            return AdjustReply(
                transfer_id=str(replayed),
                balance=totals.balance,
                available=totals.available,
                replayed=True,
            )
        transfer_id, after = posted
        await outbox.queue_events(
            conn,
            balance_events(
                cmd.account_id,
                account.totals,
                after,
                cause="adjustment",
                low_threshold=self.low_threshold,
            ),
        )
        return AdjustReply(
            transfer_id=str(transfer_id), balance=after.balance, available=after.available
        )

    async def purchase_plan(self, conn: Conn, cmd: PurchasePlanCommand) -> PurchasePlanReply:
        """Debit the plan's one-time price (the version in force now) once per account
        (lifetime) and announce the purchase. Only a plan customers may choose is sold."""
        catalogue = await self.catalogue.fresh(conn)
        try:
            plan = catalogue.plan(cmd.plan)
        except KeyError:
            raise BillingError(f"there is no {cmd.plan} plan") from None
        if not plan.choosable:
            raise BillingError(f"the {cmd.plan} plan is not offered; an operator sets it")
        price = plan.price_usd
        account = await accounts.lock_account(conn, cmd.account_id)
        key = f"plan_purchase:{cmd.account_id}:{cmd.plan}"
        bought_before = await transfers.transfer_exists(conn, key)
        if bought_before or (account.known and account.plan == cmd.plan):
            # Owned already (bought, or set by an operator): no charge; re-announce so accounts
            # converges even if it missed the first PlanPurchased.
            await outbox.queue_events(
                conn, [PlanPurchased(account_id=cmd.account_id, plan=cmd.plan, price=0)]
            )
            return PurchasePlanReply(
                plan=cmd.plan, price=0, balance=account.totals.balance, already_owned=True
            )
        if account.totals.available < price:
            raise InsufficientBalance(f"the {cmd.plan} plan costs more than the available balance")
        if price == 0:  # nothing to debit (a ledger transfer moves a positive amount)
            await accounts.set_plan(conn, cmd.account_id, cmd.plan)
            await outbox.queue_events(
                conn, [PlanPurchased(account_id=cmd.account_id, plan=cmd.plan, price=0)]
            )
            return PurchasePlanReply(plan=cmd.plan, price=0, balance=account.totals.balance)
        spec = TransferSpec(
            key=key,
            kind="plan_purchase",
            account_id=cmd.account_id,
            amount=-price,
            counterpart=PLAN_SALES,
            reference=cmd.plan,
            memo=f"{cmd.plan} plan",
            actor="customer",
        )
        posted = await transfers.post_transfer(conn, spec, account.totals)
        assert posted is not None  # the key was checked under the account lock
        _, after = posted
        await accounts.set_plan(conn, cmd.account_id, cmd.plan)
        events = [
            PlanPurchased(account_id=cmd.account_id, plan=cmd.plan, price=price),
            *balance_events(
                cmd.account_id,
                account.totals,
                after,
                cause="plan_purchase",
                low_threshold=self.low_threshold,
            ),
        ]
        await outbox.queue_events(conn, events)
        return PurchasePlanReply(plan=cmd.plan, price=price, balance=after.balance)
