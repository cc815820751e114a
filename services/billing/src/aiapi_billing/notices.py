"""Which balance events a change of an account's totals announces. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from aiapi_shared.events import BalanceChanged, BalanceExhausted, BalanceLow, Event
from aiapi_shared.events.billing_v1 import BalanceCause


@dataclass(frozen=True)
class Totals:
    """An account's running totals after (or before) a change."""

    credits: int
    debits: int
    holds: int
    version: int

    @property
    def balance(self) -> int:
        return self.credits - self.debits

    @property
    def available(self) -> int:
        return self.credits - self.debits - self.holds


def balance_events(
    account_id: str,
    before: Totals,
    after: Totals,
    *,
    cause: BalanceCause,
    low_threshold: int,
) -> list[Event]:
    """BalanceChanged always; BalanceLow / BalanceExhausted only when a threshold is crossed."""
    events: list[Event] = [
        BalanceChanged(
            account_id=account_id,
            balance=after.balance,
            available=after.available,
            version=after.version,
            cause=cause,
        )
    ]
    if before.available >= low_threshold > after.available > 0:
        events.append(
            BalanceLow(account_id=account_id, available=after.available, threshold=low_threshold)
        )
    if before.available > 0 >= after.available:
        events.append(BalanceExhausted(account_id=account_id, available=after.available))
    return events
