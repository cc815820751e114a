"""Payments' request/reply API on NATS, for accounts (operator and customer routes).

Replies are the ``*Reply`` types or :class:`aiapi_shared.billing_api.ApiError`. While payments is
not running, a request gets no responder: accounts answers with an empty list.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from aiapi_shared.events.base import Record
from aiapi_shared.events.payments_v1 import Asset, Network
from aiapi_shared.money import Money

ADDRESSES_SUBJECT = "rpc.payments.v1.addresses.get"
DEPOSITS_SUBJECT = "rpc.payments.v1.deposits.list"
SET_RATE_SUBJECT = "rpc.payments.v1.rates.set"
SWEEP_PLAN_SUBJECT = "rpc.payments.v1.sweep.plan"

DepositState = Literal["detected", "confirmed", "credited", "orphaned", "below_minimum", "reversed"]


class AccountQuery(Record):
    account_id: str


def _unset(value: object) -> bool:
    return value is None


# The fields added for the dashboard are left out of a document while unknown, so the lists
# answered before them (operator and customer APIs) keep their shape.
_Added = Field(default=None, exclude_if=_unset)


class DepositAddress(Record):
    """An account's address for one asset, with what a payer needs to know about it (the
    dashboard's top-up card). The fields after ``address`` are optional on the wire."""

    asset: Asset
    network: Network
    address: str
    chain_id: int | None = _Added  # EVM networks: the chain a payment URI names
    token_contract: str | None = _Added  # a token's canonical contract (the only one that credits)
    minimum_usd: Money | None = _Added  # smaller deposits are recorded, not credited
    # Blocks a deposit needs before it credits; None with finality "finalized" (the chain's
    # finalized tag decides).
    confirmations: int | None = _Added
    finality: Literal["finalized", "confirmations"] | None = _Added
    rate_usd: Money | None = _Added  # USD per whole coin now; None while no fresh rate is known
    rate_source: str | None = _Added


class AddressesQuery(AccountQuery):
    """``allocate`` false: only the addresses the account was given before, never a new one (no
    address derived, no allocation lock taken); the reply's ``missing`` counts the enabled assets
    and networks the account has no address for yet. A payments from before this field ignores
    it and allocates (its reply then has nothing missing)."""

    allocate: bool = True


class AddressesReply(Record):
    addresses: list[DepositAddress]
    missing: int = 0


class Deposit(Record):
    asset: Asset
    network: Network
    tx_hash: str
    position: int
    amount: str
    confirmations: int
    # How many the deposit needs on its network (the configured depth, the distance to the
    # node's finalized block, Bitcoin's tier); null when not known yet.
    confirmations_required: int | None = None
    state: DepositState
    usd: Money | None = None
    first_seen_at: AwareDatetime | None = None


class DepositsReply(Record):
    deposits: list[Deposit]


class SetRateCommand(Record):
    asset: Literal["ETH", "BTC"]
    usd: Money
    actor: str = "operator"


class SetRateReply(Record):
    asset: Literal["ETH", "BTC"]
    usd: Money
    set_at: AwareDatetime


class SweepPlanQuery(Record):
    """Where the swept funds go, per account key: `evm` (every EVM network), `tron`, `bitcoin`.
    A key without a destination is still listed, with `to` null."""

    destinations: dict[Literal["evm", "tron", "bitcoin"], str] = Field(default_factory=dict)


class SweepTransfer(Record):
    network: Network
    asset: Asset
    contract: str | None  # the token contract; null: the network's own coin
    address: str  # the deposit address that holds it
    derivation_path: str  # e.g. m/44'/60'/0'/0/7: where the signing wallet finds its key
    amount: str  # decimal string in the asset's unit
    amount_base_units: str
    to: str | None


class SweepGasNeed(Record):
    """Tokens at `address` cannot move until the network's coin pays the fee."""

    network: Network
    address: str
    derivation_path: str
    coin: str
    balance: str


class SweepTotal(Record):
    network: Network
    asset: Asset
    amount: str


class SweepPlanReply(Record):
    """An unsigned description of the transfers that gather the deposits (never signed here)."""

    format: str
    unsigned: bool
    created_at: AwareDatetime
    destinations: dict[str, str]
    transfers: list[SweepTransfer]
    needs_gas: list[SweepGasNeed]
    totals: list[SweepTotal]
    unreachable: list[str]  # networks whose node did not answer: plan again later
