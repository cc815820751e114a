"""The request/reply API of `aiapi_shared.payments_api` (I/O: the repository behind it).

Every handler answers, never times out: a reply model, or an `ApiError` whose `status` is the
HTTP status accounts should use. Errors are mapped in `_answer`, the one place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Literal

import psycopg
from aiapi_shared.billing_api import ApiError
from aiapi_shared.bus import Bus
from aiapi_shared.console_api import (
    DEPOSIT_OWNERS_SUBJECT,
    DepositOwner,
    DepositOwnersQuery,
    DepositOwnersReply,
)
from aiapi_shared.events.base import Record
from aiapi_shared.payments_api import (
    ADDRESSES_SUBJECT,
    DEPOSITS_SUBJECT,
    SET_RATE_SUBJECT,
    SWEEP_PLAN_SUBJECT,
    AccountQuery,
    AddressesQuery,
    AddressesReply,
    DepositAddress,
    DepositsReply,
    SetRateCommand,
    SetRateReply,
    SweepPlanQuery,
    SweepPlanReply,
)
from aiapi_shared.payments_api import Deposit as DepositView
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from aiapi_payments.balances import BalanceReader
from aiapi_payments.book import RateLookup
from aiapi_payments.config import PaymentsConfig
from aiapi_payments.keys import ExtendedPublicKey
from aiapi_payments.model import Asset, ChainNetwork, Deposit, DepositState, KeyChain
from aiapi_payments.policy import confirmations, format_units
from aiapi_payments.pricing import ManualRate
from aiapi_payments.repository import AccountDeposit, ChainHead, Repository, StoredAddress
from aiapi_payments.sweep import SweepError, check_destination, derivation_path, plan_document
from aiapi_payments.tracking import rate_lookup

log = logging.getLogger("aiapi.payments.api")
QUEUE = "payments"
# A manual rate per whole coin, in nano-USD, is stored as bigint: 10^9 USD leaves room (found by
# fuzzing: a larger one failed in PostgreSQL and the request went unanswered).
MAX_RATE = 10**18


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


def confirmations_required(
    config: PaymentsConfig, deposit: Deposit, head: ChainHead | None
) -> int | None:
    """How many confirmations the deposit needs on its network, as the customer sees progress:
    the configured depth, the distance to the node's `finalized` block where that rules (it
    moves with the chain), Bitcoin's tier for the deposit's value; None when unknown."""
    network = deposit.key.network
    if network == ChainNetwork.BITCOIN:
        return None if config.bitcoin is None else config.bitcoin.policy.required(deposit.usd_nano)
    chain = config.chain(network)
    if chain is None:
        return None
    if head is None:
        return chain.finality.confirmations if not chain.finality.tag else None
    return chain.finality.required(head.head, head.finalized)


def deposit_view(
    record: AccountDeposit,
    heads: Mapping[ChainNetwork, ChainHead],
    required: int | None = None,
) -> DepositView:
    """The listing's view; confirmations from the newest head the watcher saw, when it is
    newer than the record (a credited deposit's record no longer changes)."""
    deposit = record.deposit
    key = deposit.key
    live = deposit.confirmations
    if deposit.state not in (DepositState.ORPHANED, DepositState.REVERSED) and key.network in heads:
        live = max(live, confirmations(deposit.block_number, heads[key.network].head))
    return DepositView(
        asset=key.asset.value,
        network=key.network.value,
        tx_hash=key.tx_hash,
        position=key.position,
        amount=format_units(deposit.amount, deposit.scale),
        confirmations=live,
        confirmations_required=required,
        state=deposit.state.value,
        usd=deposit.usd_nano,
        first_seen_at=deposit.first_seen_at,
    )


class PaymentsApi:
    def __init__(
        self,
        repository: Repository,
        config: PaymentsConfig,
        clock: Callable[[], datetime],
        balances: BalanceReader | None = None,
    ) -> None:
        self._repository = repository
        self._config = config
        self._clock = clock
        self._balances = balances

    async def serve(self, bus: Bus) -> None:
        routes = {
            ADDRESSES_SUBJECT: self._addresses,
            DEPOSITS_SUBJECT: self._deposits,
            SET_RATE_SUBJECT: self._set_rate,
            SWEEP_PLAN_SUBJECT: self._sweep_plan,
            DEPOSIT_OWNERS_SUBJECT: self._owners,
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
        """One address per enabled asset and network; every EVM network shares the account's
        one coin-60 address (deposits are told apart by the network they arrive on). Without
        ``allocate``, only the addresses already given (a read: the top-up page asks on every
        load) and how many offers still have none."""
        query = AddressesQuery.model_validate_json(data)
        account_id = self._account(data)
        rates = await rate_lookup(self._repository, self._config, self._clock())
        found: list[DepositAddress] = []
        stored: dict[KeyChain, StoredAddress | None] = {}
        missing = 0
        for asset, network in self._config.offers:
            keychain = self._config.keychain(network)
            if keychain not in stored:
                stored[keychain] = (
                    await self._repository.assign_address(
                        account_id, keychain, partial(self._config.derive_from, keychain)
                    )
                    if query.allocate
                    else await self._repository.address(account_id, keychain)
                )
            given = stored[keychain]
            if given is None:
                missing += 1
                continue
            found.append(self._address_view(asset, network, given.address, rates))
        return AddressesReply(addresses=found, missing=missing)

    def _address_view(
        self, asset: Asset, network: ChainNetwork, address: str, rates: RateLookup
    ) -> DepositAddress:
        """The address with what a payer needs to know (the dashboard's top-up card)."""
        chain = self._config.chain(network)
        rate = rates(asset, self._clock())
        token = next((t for t in chain.tokens if t.asset is asset), None) if chain else None
        needed: int | None = None
        finality: Literal["finalized", "confirmations"] | None = None
        if chain is not None:
            finality = "finalized" if chain.finality.tag else "confirmations"
            needed = chain.finality.confirmations
        elif network is ChainNetwork.BITCOIN and self._config.bitcoin is not None:
            # The default; a large deposit may need more (each deposit says what it needs).
            finality, needed = "confirmations", self._config.bitcoin.policy.required(0)
        return DepositAddress(
            asset=asset.value,
            network=network.value,
            address=address,
            chain_id=chain.chain_id if chain else None,
            token_contract=token.shown if token else None,
            minimum_usd=self._config.minimum(asset),
            confirmations=needed,
            finality=finality,
            rate_usd=rate.rate_nano_usd if rate else None,
            rate_source=rate.source if rate else None,
        )

    async def _deposits(self, data: bytes) -> DepositsReply:
        account_id = self._account(data)
        records = await self._repository.account_deposits(account_id)
        heads = await self._repository.heads()
        views = [
            deposit_view(
                record,
                heads,
                confirmations_required(
                    self._config, record.deposit, heads.get(record.deposit.key.network)
                ),
            )
            for record in records
        ]
        return DepositsReply(deposits=views)

    async def _owners(self, data: bytes) -> DepositOwnersReply:
        """Whose deposit address or transaction this is (the operator console's search)."""
        query = DepositOwnersQuery.model_validate_json(data)
        found = await self._repository.deposit_owners(query.text)
        return DepositOwnersReply(
            owners=[
                DepositOwner(
                    account_id=account_id, matched="address" if kind == "address" else "tx_hash"
                )
                for account_id, kind in found
            ]
        )

    async def _set_rate(self, data: bytes) -> SetRateReply:
        command = SetRateCommand.model_validate_json(data)
        if command.usd <= 0:
            raise ApiRefusal("invalid_request", "a rate is a positive USD amount", 400)
        if command.usd > MAX_RATE:
            raise ApiRefusal("invalid_request", "a rate is at most 1000000000.00 USD", 400)
        rate = ManualRate(Asset(command.asset), command.usd, self._clock())
        priced = await self._repository.record_manual_rate(rate, command.actor)
        log.info(
            "manual rate set by %s for %s; it priced %d waiting deposit(s)",
            command.actor,
            command.asset,
            len(priced),
        )
        return SetRateReply(asset=command.asset, usd=command.usd, set_at=rate.set_at)

    async def _sweep_plan(self, data: bytes) -> SweepPlanReply:
        """Balances from the nodes, paths from the keys, destinations from the operator."""
        query = SweepPlanQuery.model_validate_json(data)
        if self._balances is None:
            raise ApiRefusal("unavailable", "no network is enabled", 503)
        bitcoin = self._config.bitcoin
        enabled = self._keychains()
        off = sorted(name for name in query.destinations if KeyChain(name) not in enabled)
        if off:
            raise ApiRefusal("invalid_request", f"no network uses the {off[0]} key here", 400)
        try:
            destinations = {
                KeyChain(name): check_destination(
                    KeyChain(name), address, bitcoin.network if bitcoin else None
                )
                for name, address in query.destinations.items()
            }
        except SweepError as error:
            raise ApiRefusal("invalid_request", str(error), 400) from None

        async def funded(network: ChainNetwork) -> list[StoredAddress]:
            return await self._repository.funded_addresses(network, self._config.keychain(network))

        found = await self._balances.read(funded)
        paths = {
            (holding.keychain, holding.index): derivation_path(
                holding.keychain,
                self._account_key(holding.keychain),
                holding.index,
                bitcoin_coin=0 if bitcoin is None or bitcoin.network.value == "mainnet" else 1,
            )
            for holding in found.holdings
        }
        document = plan_document(found.holdings, found.gas, paths, destinations, found.unreachable)
        return SweepPlanReply.model_validate({**document, "created_at": self._clock()})

    def _keychains(self) -> set[KeyChain]:
        return {self._config.keychain(network) for network in self._config.networks}

    def _account_key(self, keychain: KeyChain) -> ExtendedPublicKey:
        if keychain is KeyChain.BITCOIN:
            assert self._config.bitcoin is not None
            return self._config.bitcoin.account
        return next(chain.account for chain in self._config.evm if chain.keychain is keychain)
