"""The nouns of the payments domain: assets, deposit keys, observed transfers, deposits.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ChainNetwork(StrEnum):
    ETHEREUM = "ethereum"
    BITCOIN = "bitcoin"


class Asset(StrEnum):
    USDT = "USDT"
    ETH = "ETH"
    BTC = "BTC"

    @property
    def decimals(self) -> int:
        """Base units per whole coin, as a power of ten (wei, USDT's 6 decimals, sats)."""
        return {"USDT": 6, "ETH": 18, "BTC": 8}[self.value]

    @property
    def unit(self) -> int:
        """Base units in one whole coin."""
        return int(10**self.decimals)

    @property
    def network(self) -> ChainNetwork:
        return ChainNetwork.BITCOIN if self is Asset.BTC else ChainNetwork.ETHEREUM


class DepositState(StrEnum):
    DETECTED = "detected"
    CONFIRMED = "confirmed"
    CREDITED = "credited"
    ORPHANED = "orphaned"
    BELOW_MINIMUM = "below_minimum"
    REVERSED = "reversed"


@dataclass(frozen=True, order=True)
class DepositKey:
    """What makes a deposit the same deposit: (network, asset, tx hash, position in the tx).

    `position` is the place of the transfer *inside its transaction*, never inside its block,
    so a transaction re-mined at another height or index is the same deposit:
    - ERC-20: the ordinal of the transfer among the transaction's `Transfer` logs of the
      canonical contract (0, 1, ...), not the block-wide log index;
    - native ETH: 0 (a transaction carries one value; internal transfers are not watched);
    - Bitcoin: the output index (vout).
    The asset is part of the key because one Ethereum transaction can move both ETH and tokens.
    """

    network: ChainNetwork
    asset: Asset
    tx_hash: str  # lowercase hex; 0x-prefixed on Ethereum, bare on Bitcoin (as the chains write it)
    position: int

    @property
    def deposit_id(self) -> str:
        """The id other services know the deposit by (billing credits once per id)."""
        return f"{self.network}:{self.asset}:{self.tx_hash}:{self.position}"


@dataclass(frozen=True)
class Transfer:
    """One payment to a deposit address, as a chain adapter saw it just now."""

    key: DepositKey
    address: str
    amount: int  # base units
    block_number: int | None  # None: in the mempool
    block_hash: str | None


@dataclass(frozen=True)
class Deposit:
    """The service's record of a transfer over time."""

    key: DepositKey
    address: str
    amount: int
    state: DepositState
    first_seen_at: datetime
    block_number: int | None = None
    block_hash: str | None = None
    confirmations: int = 0
    rate_nano_usd: int | None = None  # per whole coin; None: waiting for a rate
    usd_nano: int | None = None
    rate_source: str | None = None  # "par", "median(...)" or "manual": kept for audit

    @property
    def deposit_id(self) -> str:
        return self.key.deposit_id
