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


class AddressesReply(Record):
    addresses: list[DepositAddress]


class Deposit(Record):
    asset: Asset
    network: Network
    tx_hash: str
    position: int
    amount: str
    confirmations: int
    state: DepositState
    usd: Money | None = None
    first_seen_at: AwareDatetime | None = None
    # Confirmations this deposit needs to credit; None while the finalized tag decides.
    confirmations_needed: int | None = _Added


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
