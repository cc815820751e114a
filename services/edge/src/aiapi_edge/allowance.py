"""What the edge may spend on an account's behalf while billing cannot be reached (pure).

When the admission round trip fails, a request is still admitted if its estimated cost fits in
a small per-account allowance and in the account's last known available balance. Without a
balance snapshot there is no allowance: the edge knows nothing of what the account can pay. The
estimate is deliberately high: the official (undiscounted) price of the input estimate plus the
whole ``max_tokens``.

A request's estimate stays spent until billing has settled that request (its usage record
exists), not merely until billing answers again: a billing that comes and goes would otherwise
hand out a fresh allowance after every blip. :mod:`.allowance_settlement` asks billing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiapi_shared.catalogue import ModelEntry
from aiapi_shared.money import Money

_BPS = 10_000
_TOKENS_PER_MTOK = 1_000_000


def estimate_input_tokens(body_size: int) -> int:
    """A generous estimate without tokenising: about four bytes of JSON per token."""
    return body_size // 4 + 1


def estimated_cost(
    model: ModelEntry,
    at: datetime,
    input_tokens: int,
    max_tokens: int,
    premium: tuple[int, int] = (_BPS, _BPS),
) -> Money:
    """The list price of the input estimate and ``max_tokens`` at ``premium`` (bps on input and
    output: long context, region, ...), rounded up."""
    price = model.price_at(at) or max(model.prices, key=lambda p: p.effective_from)
    nano = (
        price.input_usd_per_mtok * input_tokens * premium[0]
        + price.output_usd_per_mtok * max_tokens * premium[1]
    )
    return -(-nano // (_TOKENS_PER_MTOK * _BPS))  # rounded up


class OfflineAllowance:
    def __init__(self, per_account: Money) -> None:
        self._per_account = per_account
        self._spent: dict[str, Money] = {}
        self._unsettled: dict[str, tuple[str, Money]] = {}  # request id -> (account id, cost)
        # Called after each spend: the loop asking billing about unsettled requests sleeps
        # while there are none (aiapi_edge.allowance_settlement) and is woken by it.
        self.on_spend: Callable[[], None] = _nothing

    def try_spend(self, account_id: str, request_id: str, cost: Money, available: Money) -> bool:
        """Record ``cost`` against the account if it fits; False (nothing recorded) if not."""
        spent = self._spent.get(account_id, 0)
        if spent + cost > min(self._per_account, available):
            return False
        self._spent[account_id] = spent + cost
        self._unsettled[request_id] = (account_id, cost)
        self.on_spend()
        return True

    def spent(self, account_id: str) -> Money:
        return self._spent.get(account_id, 0)

    def unsettled(self) -> list[tuple[str, str]]:
        """(request id, account id) of every request admitted here and not yet settled."""
        return [(request_id, account) for request_id, (account, _) in self._unsettled.items()]

    def settled(self, request_id: str) -> None:
        """Billing has priced this request: its estimate no longer counts."""
        entry = self._unsettled.pop(request_id, None)
        if entry is None:
            return
        account_id, cost = entry
        left = self._spent.get(account_id, 0) - cost
        if left > 0:
            self._spent[account_id] = left
        else:
            self._spent.pop(account_id, None)


def _nothing() -> None:
    pass
