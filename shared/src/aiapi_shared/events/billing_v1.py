"""Billing events: requests priced and debited, balances changed, plan purchases."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime

from aiapi_shared.catalogue import PlanId
from aiapi_shared.events.base import Event
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.money import Money


class RequestPriced(Event):
    """A request's usage was priced and debited from the account, exactly once."""

    subject: ClassVar[str] = "billing.v1.request.priced"

    request_id: str
    account_id: str
    model: str
    started_at: AwareDatetime
    usage: Usage
    cost: Money
    price_effective_from: AwareDatetime


BalanceCause = Literal["usage", "deposit", "adjustment", "plan_purchase", "hold"]


class BalanceChanged(Event):
    """An account's settled balance or available amount changed; ``version`` only grows."""

    subject: ClassVar[str] = "billing.v1.balance.changed"

    account_id: str
    balance: Money
    available: Money
    version: int
    cause: BalanceCause


class BalanceLow(Event):
    """The available balance fell below the low-balance threshold."""

    subject: ClassVar[str] = "billing.v1.balance.low"

    account_id: str
    available: Money
    threshold: Money


class BalanceExhausted(Event):
    """The available balance reached zero: requests get 402 until a top-up."""

    subject: ClassVar[str] = "billing.v1.balance.exhausted"

    account_id: str
    available: Money


class PlanPurchased(Event):
    """A customer bought a plan from the balance (debited once)."""

    subject: ClassVar[str] = "billing.v1.plan.purchased"

    account_id: str
    plan: PlanId
    price: Money


class DepositCredited(Event):
    """A confirmed deposit was credited to the balance, exactly once."""

    subject: ClassVar[str] = "billing.v1.deposit.credited"

    account_id: str
    deposit_id: str
    amount: Money
