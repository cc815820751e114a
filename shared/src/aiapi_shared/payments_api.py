"""Payments' request/reply API on NATS, for accounts (operator and customer routes).

Replies are the ``*Reply`` types or :class:`aiapi_shared.billing_api.ApiError`. While payments is
not running, a request gets no responder: accounts answers with an empty list.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from aiapi_shared.events.base import Record
from aiapi_shared.events.payments_v1 import Asset, Network
from aiapi_shared.money import Money

ADDRESSES_SUBJECT = "rpc.payments.v1.addresses.get"
DEPOSITS_SUBJECT = "rpc.payments.v1.deposits.list"
SET_RATE_SUBJECT = "rpc.payments.v1.rates.set"

DepositState = Literal["detected", "confirmed", "credited", "orphaned", "below_minimum", "reversed"]


class AccountQuery(Record):
    account_id: str


class DepositAddress(Record):
    asset: Asset
    network: Network
    address: str


class AddressesReply(Record):
    addresses: list[DepositAddress]


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
