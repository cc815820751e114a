"""What a settled batch of usage events writes to the ledger and announces. Pure: no I/O.

A batch settles many events in one transaction; this module turns the events that were recorded
for the first time (with their cost and the hold each released) into one transfer per event that
cost anything, one move of the running totals per account, and the events to publish: a
``RequestPriced`` per event and, per account, one ``BalanceChanged`` for the whole batch (plus
``BalanceLow`` / ``BalanceExhausted`` when the batch crossed a threshold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events import Event, RequestPriced, UsageRecorded

from aiapi_billing import pricing, ratelimit
from aiapi_billing.ledger import REVENUE, TotalsMove, TransferSpec
from aiapi_billing.notices import Totals, balance_events


@dataclass(frozen=True)
class Released:
    """The open hold a settled event closed: its amount and the tokens admission counted."""

    amount: int
    rate_tokens: int


@dataclass(frozen=True)
class SettledEvent:
    event: UsageRecorded
    cost: int
    price: pricing.Price
    released: Released | None


@dataclass(frozen=True)
class Postings:
    transfers: list[tuple[TransferSpec, int]]  # each with the balance after it
    moves: list[TotalsMove]


def usage_transfer(event: UsageRecorded, cost: int) -> TransferSpec:
    return TransferSpec(
        key=f"usage:{event.request_id}",
        kind="usage",
        account_id=event.account_id,
        amount=-cost,
        counterpart=REVENUE,
        reference=event.request_id,
        memo=event.model,
    )


def post(
    settled: Sequence[SettledEvent], before: Mapping[str, Totals], catalogue: Catalogue
) -> Postings:
    """Transfers in batch order (each with its running balance), and each account's total move."""
    balance = {account_id: totals.balance for account_id, totals in before.items()}
    debit: dict[str, int] = {}
    holds: dict[str, int] = {}
    tpm: dict[str, int] = {}
    transfers: list[tuple[TransferSpec, int]] = []
    for item in settled:
        account_id = item.event.account_id
        debit[account_id] = debit.get(account_id, 0) + item.cost
        if item.cost > 0:
            balance[account_id] -= item.cost
            transfers.append((usage_transfer(item.event, item.cost), balance[account_id]))
        if item.released is not None:
            holds[account_id] = holds.get(account_id, 0) - item.released.amount
            # Tokens/min counted the admission's estimate; the real usage replaces it.
            correction = ratelimit.token_correction_us(
                pricing.rate_tokens(item.event.usage),
                item.released.rate_tokens,
                catalogue.terms(
                    item.event.plan, account_id, item.event.started_at
                ).tokens_per_minute,
            )
            tpm[account_id] = tpm.get(account_id, 0) + correction
    moves = [
        TotalsMove(a, debit=debit[a], hold_delta=holds.get(a, 0), tpm_tat_delta_us=tpm.get(a, 0))
        for a in sorted(debit)
    ]
    return Postings(transfers, moves)


def announcements(
    settled: Sequence[SettledEvent],
    before: Mapping[str, Totals],
    after: Mapping[str, Totals],
    *,
    low_threshold: int,
) -> list[Event]:
    """A RequestPriced per event, then the balance events of each account the batch moved."""
    events: list[Event] = [
        RequestPriced(
            request_id=item.event.request_id,
            account_id=item.event.account_id,
            model=item.event.model,
            started_at=item.event.started_at,
            usage=item.event.usage,
            cost=item.cost,
            price_effective_from=item.price.effective_from,
        )
        for item in settled
    ]
    for account_id in sorted(after):
        events.extend(
            balance_events(
                account_id,
                before[account_id],
                after[account_id],
                cause="usage",
                low_threshold=low_threshold,
            )
        )
    return events
