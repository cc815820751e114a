"""The nouns of the payments domain: assets, deposit keys, observed transfers, deposits.

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

_NETWORK_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


class ChainNetwork(str):
    """A network's name as the API shows it: `ethereum`, `bitcoin`, `tron`, or another EVM
    network of AIAPI_EVM_CHAINS (`base`, `arbitrum`, ...). Networks are data (settings), so
    this is a checked string rather than a closed enumeration."""

    ETHEREUM: ClassVar[ChainNetwork]
    BITCOIN: ClassVar[ChainNetwork]
    TRON: ClassVar[ChainNetwork]

    def __new__(cls, name: str) -> ChainNetwork:
        if not _NETWORK_NAME.fullmatch(name):
            raise ValueError(
                "a network name is lowercase letters, digits and dashes (at most 32), "
                "starting with a letter"
            )
        return super().__new__(cls, name)

    @property
    def value(self) -> str:
        return str.__str__(self)


ChainNetwork.ETHEREUM = ChainNetwork("ethereum")
ChainNetwork.BITCOIN = ChainNetwork("bitcoin")
ChainNetwork.TRON = ChainNetwork("tron")


class KeyChain(StrEnum):
    """Which account key derives a network's deposit addresses. Every EVM network shares the
    coin-60 key (`evm`): an account has one address on all of them."""

    EVM = "evm"
    TRON = "tron"
    BITCOIN = "bitcoin"


class Asset(StrEnum):
    USDT = "USDT"
    USDC = "USDC"
    ETH = "ETH"
    BTC = "BTC"

    @property
    def decimals(self) -> int:
        """The usual base units per whole coin, as a power of ten (wei, 6 for the USD tokens,
        sats); a token's configured decimals take precedence (`Transfer.decimals`)."""
        return {"USDT": 6, "USDC": 6, "ETH": 18, "BTC": 8}[self.value]

    @property
    def unit(self) -> int:
        """Base units in one whole coin."""
        return int(10**self.decimals)

    @property
    def pegged(self) -> bool:
        """A USD stablecoin: credited at 1 USD unless the depeg guard pauses it."""
        return self in (Asset.USDT, Asset.USDC)


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
    tx_hash: str  # lowercase hex; 0x-prefixed on EVM networks, bare on Bitcoin and TRON (as
    # their explorers write it)
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
    decimals: int | None = None  # the token's configured decimals; None: the asset's usual

    @property
    def scale(self) -> int:
        return self.key.asset.decimals if self.decimals is None else self.decimals


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
    decimals: int | None = None  # the token's configured decimals; None: the asset's usual

    @property
    def deposit_id(self) -> str:
        return self.key.deposit_id

    @property
    def scale(self) -> int:
        """Decimals of `amount` (6 for USDT, 18 for wei, ...)."""
        return self.key.asset.decimals if self.decimals is None else self.decimals
