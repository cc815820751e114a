"""One watch cycle per chain (I/O): ask the watcher, apply the book, store, announce.

A cycle reads the addresses and the deposits it needs, lets the chain watcher look, lets the
pure book decide the new records, derives the events (`announcements`), and writes all of it
in one transaction (`Repository.commit_watch`). The outbox relay is then woken to publish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from aiapi_shared.events.base import Event
from web3 import AsyncWeb3

from aiapi_payments.announcements import announcements
from aiapi_payments.bitcoin import BitcoinWatcher
from aiapi_payments.book import RateLookup, observe
from aiapi_payments.config import BitcoinConfig, EvmChainConfig, PaymentsConfig
from aiapi_payments.depeg import DepegGuard
from aiapi_payments.ethereum import EthereumWatcher
from aiapi_payments.model import (
    Asset,
    ChainNetwork,
    Deposit,
    DepositKey,
    DepositState,
    KeyChain,
    Transfer,
)
from aiapi_payments.pricing import RateChoice, rate_at_first_sight
from aiapi_payments.repository import (
    AccountDeposit,
    ChainHead,
    PostgresCursorStore,
    Repository,
    StoredAddress,
)

log = logging.getLogger("aiapi.payments.tracking")

Clock = Callable[[], datetime]
_RECENT_BTC_CONFIRMATIONS = 144  # credited BTC deposits re-checked until this deep


async def rate_lookup(repository: Repository, config: PaymentsConfig, now: datetime) -> RateLookup:
    """The rates known now: fresh quotes and the newest manual rates, frozen for one cycle."""
    quotes = await repository.quotes_since(now - config.price_max_age - timedelta(seconds=5))
    manual = await repository.newest_manual_rates()

    def lookup(asset: Asset, at: datetime) -> RateChoice | None:
        return rate_at_first_sight(asset, at, quotes, manual, max_age=config.price_max_age)

    return lookup


def _records(
    changed: Mapping[DepositKey, Deposit],
    known: Mapping[DepositKey, AccountDeposit],
    owners: Mapping[str, StoredAddress],
    now: datetime,
) -> tuple[list[AccountDeposit], list[Event]]:
    records: list[AccountDeposit] = []
    events: list[Event] = []
    for key, deposit in changed.items():
        previous = known.get(key)
        account_id = previous.account_id if previous else owners[deposit.address.lower()].account_id
        records.append(AccountDeposit(account_id, deposit))
        events.extend(
            announcements(previous.deposit if previous else None, deposit, account_id, now)
        )
        if deposit.state is DepositState.REVERSED and (
            previous is None or previous.deposit.state is not DepositState.REVERSED
        ):
            # Finality broke after the deposit was confirmed: billing gets the compensating
            # event from the outbox; a person has to look at what happened on the chain.
            log.error(
                "ALERT: deposit %s left the best chain after it was confirmed; reversed",
                key.deposit_id,
            )
    return records, events


def _by_lowercase(addresses: Iterable[StoredAddress]) -> dict[str, StoredAddress]:
    return {stored.address.lower(): stored for stored in addresses}


class EvmTracking:
    """The watch cycle of one EVM-style network (Ethereum, another EVM network, TRON).

    The watcher speaks the node's language (0x addresses and hashes); this cycle translates at
    the boundary, so records and events carry the network's own forms (TRON: `T...`
    addresses and transaction ids without 0x).
    """

    def __init__(
        self,
        repository: Repository,
        config: PaymentsConfig,
        chain: EvmChainConfig,
        watcher_factory: Callable[[PostgresCursorStore], EthereumWatcher],
        clock: Clock,
        guard: DepegGuard | None = None,
    ) -> None:
        self._repository = repository
        self._config = config
        self._chain = chain
        self._guard = guard
        self.network = chain.network
        self._cursor = PostgresCursorStore(repository, chain.network.value)
        self._watcher = watcher_factory(self._cursor)
        self._clock = clock

    def _shown(self, transfer: Transfer) -> Transfer:
        key = transfer.key
        return replace(
            transfer,
            key=replace(key, tx_hash=self._chain.shown_tx_hash(key.tx_hash)),
            address=self._chain.shown_address(transfer.address),
        )

    async def _paused(self, now: datetime) -> frozenset[Asset]:
        if self._guard is None:
            return frozenset()
        since = now - self._config.price_max_age - timedelta(seconds=5)
        return self._guard.update(await self._repository.quotes_since(since), now)

    async def cycle(self) -> tuple[bool, int]:
        """One poll; returns (caught up, events written)."""
        stored = await self._repository.watched_addresses(self._chain.keychain)
        owners = _by_lowercase(stored.values())
        try:
            scan = await self._watcher.poll([self._chain.to_node(a) for a in stored])
            transfers = [self._shown(transfer) for transfer in scan.transfers]
            seen = {transfer.key for transfer in transfers}
            known = await self._repository.deposits_to_watch(self.network, seen)
            removed = {block.hash for block in scan.removed}
            if removed:
                known.update(await self._repository.deposits_in_blocks(self.network, removed))
            gone = {k for k, r in known.items() if r.deposit.block_hash in removed} - seen
            now = self._clock()
            finality = self._chain.finality
            paused = await self._paused(now)
            changed = observe(
                {key: record.deposit for key, record in known.items()},
                seen=transfers,
                gone=gone,
                head=scan.head,
                now=now,
                rate_at=await rate_lookup(self._repository, self._config, now),
                # A token the depeg guard paused is not final for crediting: it waits.
                is_final=lambda d, head: (
                    d.key.asset not in paused
                    and finality.is_final(d.block_number, head, scan.finalized)
                ),
                minimum_nano=self._config.minimum,
            )
            records, events = _records(changed, known, owners, now)
            await self._repository.commit_watch(
                cursor=self._cursor.staged(),
                changes=records,
                events=events,
                head=(self.network, ChainHead(scan.head, scan.finalized)),
            )
        except BaseException:
            self._cursor.discard()
            raise
        return scan.caught_up, len(events)


EthereumTracking = EvmTracking  # the name before networks became data


def evm_watcher(
    w3: AsyncWeb3[Any], chain: EvmChainConfig, cursor: PostgresCursorStore
) -> EthereumWatcher:
    """The watcher of one EVM-style network, as its settings describe it."""
    return EthereumWatcher(
        w3,
        tokens={token.contract: (token.asset, token.decimals) for token in chain.tokens},
        cursor=cursor,
        network=chain.network,
        native=chain.native,
        start_block=chain.start_block,
        batch_size=chain.batch_blocks,
        read_finalized=chain.finality.tag,
    )


class BitcoinTracking:
    network = ChainNetwork.BITCOIN

    def __init__(
        self,
        repository: Repository,
        config: PaymentsConfig,
        chain: BitcoinConfig,
        watcher: BitcoinWatcher,
        clock: Clock,
    ) -> None:
        self._repository = repository
        self._config = config
        self._chain = chain
        self._watcher = watcher
        self._clock = clock

    async def _tracked(self) -> dict[DepositKey, AccountDeposit]:
        """Open deposits, and credited ones still shallow enough for a reorg to undo."""
        candidates = await self._repository.deposits_to_watch(self.network, ())
        recent = await self._repository.recently_credited(self.network, _RECENT_BTC_CONFIRMATIONS)
        return {**candidates, **recent}

    async def cycle(self) -> tuple[bool, int]:
        stored = await self._repository.watched_addresses(KeyChain.BITCOIN)
        owners = _by_lowercase(stored.values())
        scripts = {address: a.script for address, a in stored.items() if a.script}
        tracked = await self._tracked()
        scan = await self._watcher.poll(scripts, [r.deposit for r in tracked.values()])
        seen: list[Transfer] = scan.seen
        missing = {t.key for t in seen} - tracked.keys()
        known = dict(tracked)
        if missing:
            found = await self._repository.deposits_to_watch(self.network, missing)
            known.update({key: found[key] for key in missing if key in found})
        now = self._clock()
        policy = self._chain.policy
        changed = observe(
            {key: record.deposit for key, record in known.items()},
            seen=seen,
            gone=scan.gone,
            head=scan.head,
            now=now,
            rate_at=await rate_lookup(self._repository, self._config, now),
            is_final=lambda d, head: policy.is_final(d.block_number, head, d.usd_nano),
            minimum_nano=self._config.minimum,
        )
        records, events = _records(changed, known, owners, now)
        await self._repository.commit_watch(
            cursor=None,
            changes=records,
            events=events,
            head=(self.network, ChainHead(scan.head, None)),
        )
        return True, len(events)
