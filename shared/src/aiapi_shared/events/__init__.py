"""Every event of the product, one module per context and major version (CONTRACT.md §4)."""

from __future__ import annotations

from aiapi_shared.events.accounts_v1 import (
    AccountCreated,
    AccountStatusChanged,
    KeyIssued,
    KeyRevoked,
    PlanChanged,
)
from aiapi_shared.events.base import Event, Record, new_event_id, utc_now
from aiapi_shared.events.billing_v1 import (
    BalanceChanged,
    BalanceExhausted,
    BalanceLow,
    DepositCredited,
    PlanPurchased,
    RequestPriced,
)
from aiapi_shared.events.payments_v1 import DepositConfirmed, DepositDetected, DepositReversed
from aiapi_shared.events.usage_v1 import Usage, UsageRecorded

ALL_EVENTS: tuple[type[Event], ...] = (
    UsageRecorded,
    RequestPriced,
    BalanceChanged,
    BalanceLow,
    BalanceExhausted,
    PlanPurchased,
    DepositCredited,
    DepositDetected,
    DepositConfirmed,
    DepositReversed,
    AccountCreated,
    AccountStatusChanged,
    PlanChanged,
    KeyIssued,
    KeyRevoked,
)

EVENTS_BY_SUBJECT: dict[str, type[Event]] = {cls.subject: cls for cls in ALL_EVENTS}

__all__ = [
    "ALL_EVENTS",
    "EVENTS_BY_SUBJECT",
    "AccountCreated",
    "AccountStatusChanged",
    "BalanceChanged",
    "BalanceExhausted",
    "BalanceLow",
    "DepositConfirmed",
    "DepositCredited",
    "DepositDetected",
    "DepositReversed",
    "Event",
    "KeyIssued",
    "KeyRevoked",
    "PlanChanged",
    "PlanPurchased",
    "Record",
    "RequestPriced",
    "Usage",
    "UsageRecorded",
    "new_event_id",
    "utc_now",
]
