"""The request/reply API of `aiapi_shared.payments_api` (I/O: the repository behind it).

Every handler answers, never times out: a reply model, or an `ApiError` whose `status` is the
HTTP status accounts should use. Errors are mapped in `_answer`, the one place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial

import psycopg
from aiapi_shared.billing_api import ApiError
from aiapi_shared.bus import Bus
from aiapi_shared.events.base import Record
from aiapi_shared.payments_api import (
    ADDRESSES_SUBJECT,
    DEPOSITS_SUBJECT,
    SET_RATE_SUBJECT,
    AccountQuery,
    AddressesReply,
    DepositAddress,
    DepositsReply,
    SetRateCommand,
    SetRateReply,
)
from aiapi_shared.payments_api import Deposit as DepositView
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from aiapi_payments.book import RateLookup
from aiapi_payments.config import PaymentsConfig
from aiapi_payments.model import Asset, ChainNetwork, DepositState
from aiapi_payments.policy import confirmations, format_units
from aiapi_payments.pricing import ManualRate
from aiapi_payments.repository import AccountDeposit, Repository
from aiapi_payments.tracking import rate_lookup

log = logging.getLogger("aiapi.payments.api")
QUEUE = "payments"


class ApiRefusal(Exception):
    def __init__(self, error: str, message: str, status: int) -> None:
        super().__init__(message)
        self.reply = ApiError(error=error, message=message, status=status)


async def _answer(handle: Callable[[bytes], Awaitable[Record]], data: bytes) -> bytes:
    try:
        reply: Record = await handle(data)
    except ValidationError as error:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "body" for e in error.errors())
        reply = ApiError(error="invalid_request", message=f"invalid fields: {fields}", status=400)
    except ApiRefusal as refusal:
        reply = refusal.reply
    except (psycopg.OperationalError, PoolTimeout):
        log.warning("payments API: database unavailable")
        reply = ApiError(error="unavailable", message="payments database unavailable", status=503)
    return reply.model_dump_json().encode()


def deposit_view(
    record: AccountDeposit, heads: Mapping[ChainNetwork, int], needed: int | None = None
) -> DepositView:
    """The listing's view; confirmations from the newest head the watcher saw, when it is
    newer than the record (a credited deposit's record no longer changes)."""
    deposit = record.deposit
    key = deposit.key
    live = deposit.confirmations
    if deposit.state not in (DepositState.ORPHANED, DepositState.REVERSED) and key.network in heads:
        live = max(live, confirmations(deposit.block_number, heads[key.network]))
    return DepositView(
        asset=key.asset.value,
        network=key.network.value,
        tx_hash=key.tx_hash,
        position=key.position,
        amount=format_units(deposit.amount, key.asset.decimals),
        confirmations=live,
        state=deposit.state.value,
        usd=deposit.usd_nano,
        first_seen_at=deposit.first_seen_at,
        confirmations_needed=needed,
    )


def confirmations_needed(config: PaymentsConfig, asset: Asset, usd_nano: int | None) -> int | None:
    """What a deposit of ``asset`` worth ``usd_nano`` needs; None where the finalized tag rules."""
    if asset.network is ChainNetwork.BITCOIN:
        return config.bitcoin.policy.required(usd_nano) if config.bitcoin else None
    return config.ethereum.finality.confirmations if config.ethereum else None


class PaymentsApi:
    def __init__(
        self, repository: Repository, config: PaymentsConfig, clock: Callable[[], datetime]
    ) -> None:
        self._repository = repository
        self._config = config
        self._clock = clock

    async def serve(self, bus: Bus) -> None:
        routes = {
            ADDRESSES_SUBJECT: self._addresses,
            DEPOSITS_SUBJECT: self._deposits,
            SET_RATE_SUBJECT: self._set_rate,
        }
        for subject, handle in routes.items():

            async def handler(
                data: bytes, handle: Callable[..., Awaitable[Record]] = handle
            ) -> bytes:
                return await _answer(handle, data)

            await bus.serve(subject, handler, queue=QUEUE)

    @staticmethod
    def _account(data: bytes) -> str:
        account_id = AccountQuery.model_validate_json(data).account_id.strip()
        if not account_id:
            raise ApiRefusal("invalid_request", "account_id is empty", 400)
        return account_id

    async def _addresses(self, data: bytes) -> AddressesReply:
        """One address per enabled asset (USDT and ETH share the account's Ethereum address)."""
        account_id = self._account(data)
        rates = await rate_lookup(self._repository, self._config, self._clock())
        found: list[DepositAddress] = []
        for asset in self._config.assets:
            network = asset.network
            stored = await self._repository.assign_address(
                account_id, network, partial(self._config.derive, network)
            )
            found.append(self._address_view(asset, stored.address, rates))
        return AddressesReply(addresses=found)

    def _address_view(self, asset: Asset, address: str, rates: RateLookup) -> DepositAddress:
        ethereum = self._config.ethereum if asset.network is ChainNetwork.ETHEREUM else None
        rate = rates(asset, self._clock())
        finality = None
        if asset.network is ChainNetwork.ETHEREUM and ethereum is not None:
            finality = "finalized" if ethereum.finality.confirmations is None else "confirmations"
        elif asset.network is ChainNetwork.BITCOIN:
            finality = "confirmations"
        return DepositAddress(
            asset=asset.value,
            network=asset.network.value,
            address=address,
            chain_id=ethereum.chain_id if ethereum else None,
            token_contract=ethereum.token_contract if ethereum and asset is Asset.USDT else None,
            minimum_usd=self._config.minimum(asset),
            # BTC: the default; larger deposits may need more (each deposit says what it needs).
            confirmations=confirmations_needed(self._config, asset, 0),
            finality=finality,
            rate_usd=rate.rate_nano_usd if rate else None,
            rate_source=rate.source if rate else None,
        )

    async def _deposits(self, data: bytes) -> DepositsReply:
        account_id = self._account(data)
        records = await self._repository.account_deposits(account_id)
        heads = await self._repository.heads()
        return DepositsReply(
            deposits=[
                deposit_view(
                    record,
                    heads,
                    confirmations_needed(
                        self._config, record.deposit.key.asset, record.deposit.usd_nano
                    ),
                )
                for record in records
            ]
        )

    async def _set_rate(self, data: bytes) -> SetRateReply:
        command = SetRateCommand.model_validate_json(data)
        if command.usd <= 0:
            raise ApiRefusal("invalid_request", "a rate is a positive USD amount", 400)
        rate = ManualRate(Asset(command.asset), command.usd, self._clock())
        priced = await self._repository.record_manual_rate(rate, command.actor)
        log.info(
            "manual rate set by %s for %s; it priced %d waiting deposit(s)",
            command.actor,
            command.asset,
            len(priced),
        )
        return SetRateReply(asset=command.asset, usd=command.usd, set_at=rate.set_at)
