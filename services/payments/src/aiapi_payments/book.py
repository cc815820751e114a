"""Apply what a chain adapter saw to the deposit records. Pure: records in, records out.

The same rules serve both chains: a watcher reports the transfers it sees now (with their
current block) and the deposits that are gone; the book keeps first-seen time and rate, and
moves each deposit through `policy.next_state`. The repository (PostgreSQL) stores what the
book returns.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from aiapi_payments.model import Asset, Deposit, DepositKey, DepositState, Transfer
from aiapi_payments.policy import confirmations, next_state, usd_value
from aiapi_payments.pricing import RateChoice

RateLookup = Callable[[Asset, datetime], RateChoice | None]
FinalityRule = Callable[[Deposit, int], bool]  # (deposit, head) -> final?

# Untouched by an observation, these do not move: credited and reversed are settled, and an
# orphaned deposit comes back only when a watcher sees it again.
_DORMANT = (DepositState.CREDITED, DepositState.REVERSED, DepositState.ORPHANED)


def observe(
    deposits: Mapping[DepositKey, Deposit],
    *,
    seen: Iterable[Transfer],
    gone: Collection[DepositKey],
    head: int,
    now: datetime,
    rate_at: RateLookup,
    is_final: FinalityRule,
    minimum_nano: Callable[[Asset], int],
) -> dict[DepositKey, Deposit]:
    """The deposits (of one network) whose record changed after this look at the chain.

    `seen` transfers are on the best chain now (mempool or block); `gone` keys are not.
    Deposits neither seen nor gone keep their place and only age (confirmations, finality).
    """
    current = dict(deposits)
    touched: set[DepositKey] = set()
    for transfer in seen:
        known = current.get(transfer.key)
        if known is None:
            rate = rate_at(transfer.key.asset, now)
            known = Deposit(
                key=transfer.key,
                address=transfer.address,
                amount=transfer.amount,
                state=DepositState.DETECTED,
                first_seen_at=now,
                rate_nano_usd=None if rate is None else rate.rate_nano_usd,
                rate_source=None if rate is None else rate.source,
                decimals=transfer.decimals,
            )
        current[transfer.key] = replace(
            known, block_number=transfer.block_number, block_hash=transfer.block_hash
        )
        touched.add(transfer.key)
    for key in gone:
        if key in current:
            current[key] = replace(current[key], block_number=None, block_hash=None)
            touched.add(key)
    changed: dict[DepositKey, Deposit] = {}
    for key, deposit in current.items():
        if deposit.state in _DORMANT and key not in touched:
            continue
        updated = _advance(deposit, head, key in gone, is_final, minimum_nano)
        if updated != deposits.get(key):
            changed[key] = updated
    return changed


def _advance(
    deposit: Deposit,
    head: int,
    is_gone: bool,
    is_final: FinalityRule,
    minimum_nano: Callable[[Asset], int],
) -> Deposit:
    asset = deposit.key.asset
    usd = (
        None
        if deposit.rate_nano_usd is None
        else usd_value(deposit.amount, deposit.scale, deposit.rate_nano_usd)
    )
    in_block = deposit.block_number is not None
    aged = replace(deposit, usd_nano=usd, confirmations=confirmations(deposit.block_number, head))
    state = next_state(
        deposit.state,
        on_chain=not is_gone,
        in_block=in_block,
        final=in_block and is_final(aged, head),
        usd_nano=usd,
        minimum_nano=minimum_nano(asset),
    )
    return replace(aged, state=state)


def price_waiting(
    deposits: Iterable[Deposit], asset: Asset, rate: RateChoice
) -> dict[DepositKey, Deposit]:
    """A manual rate prices the deposits of its asset that still wait for one."""
    return {
        deposit.key: replace(deposit, rate_nano_usd=rate.rate_nano_usd, rate_source=rate.source)
        for deposit in deposits
        if deposit.key.asset is asset
        and deposit.rate_nano_usd is None
        and deposit.state in (DepositState.DETECTED, DepositState.ORPHANED)
    }


def keys_in_blocks(deposits: Iterable[Deposit], block_hashes: Collection[str]) -> set[DepositKey]:
    """The deposits recorded in these blocks (after a reorg dropped them)."""
    return {deposit.key for deposit in deposits if deposit.block_hash in block_hashes}
