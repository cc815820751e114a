"""Payments events: deposits detected on chain, confirmed (the credit), reversed by a deep reorg."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import StringConstraints

from aiapi_shared.events.base import Event
from aiapi_shared.money import Money

Asset = Literal["USDT", "USDC", "ETH", "BTC"]
# `ethereum`, `bitcoin`, `tron`, or an EVM network the operator configured (`base`, `arbitrum`,
# `optimism`, `polygon`, ...): networks are settings, so the name is a checked string.
Network = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class _DepositEvent(Event):
    deposit_id: str
    account_id: str
    asset: Asset
    network: Network
    tx_hash: str
    position: int
    amount: str  # decimal string in the asset's unit, plain digits, no exponent


class DepositDetected(_DepositEvent):
    """A transfer to an account's deposit address was seen (mempool or a block)."""

    subject: ClassVar[str] = "payments.v1.deposit.detected"

    confirmations: int


class DepositConfirmed(_DepositEvent):
    """A deposit reached finality and is priced: billing credits ``usd`` once per ``deposit_id``."""

    subject: ClassVar[str] = "payments.v1.deposit.confirmed"

    usd: Money
    rate_usd: Money


class DepositReversed(_DepositEvent):
    """A credited deposit was undone by a reorganisation deeper than finality: debit it back."""

    subject: ClassVar[str] = "payments.v1.deposit.reversed"

    usd: Money
