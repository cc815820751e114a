"""What the edge may spend on an account's behalf while billing cannot be reached (pure).

When the admission round trip fails, a request is still admitted if its estimated cost fits in
a small per-account allowance (and in the account's last known available balance, when the
balance mirror has one). The estimate is deliberately high: the official (undiscounted) price of
the input estimate plus the whole ``max_tokens``. The account's spent estimates are forgotten
when billing answers again, since billing then learns the real usage from the events.
"""

from __future__ import annotations

from datetime import datetime

from aiapi_shared.catalogue import ModelEntry
from aiapi_shared.money import Money

_TOKENS_PER_MTOK = 1_000_000


def estimate_input_tokens(body_size: int) -> int:
    """A generous estimate without tokenising: about four bytes of JSON per token."""
    return body_size // 4 + 1


def estimated_cost(model: ModelEntry, at: datetime, input_tokens: int, max_tokens: int) -> Money:
    price = model.price_at(at) or max(model.prices, key=lambda p: p.effective_from)
    nano = price.input_usd_per_mtok * input_tokens + price.output_usd_per_mtok * max_tokens
    return -(-nano // _TOKENS_PER_MTOK)  # rounded up


class OfflineAllowance:
    def __init__(self, per_account: Money) -> None:
        self._per_account = per_account
        self._spent: dict[str, Money] = {}

    def try_spend(self, account_id: str, cost: Money, available: Money | None) -> bool:
        """Record ``cost`` against the account if it fits; False (nothing recorded) if not."""
        cap = self._per_account if available is None else min(self._per_account, available)
        spent = self._spent.get(account_id, 0)
        if spent + cost > cap:
            return False
        self._spent[account_id] = spent + cost
        return True

    def spent(self, account_id: str) -> Money:
        return self._spent.get(account_id, 0)

    def forget(self, account_id: str) -> None:
        self._spent.pop(account_id, None)
