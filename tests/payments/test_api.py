"""The request/reply API of `aiapi_shared.payments_api`, served over a real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiapi_payments.api import PaymentsApi
from aiapi_payments.config import PaymentsConfig, build_config
from aiapi_payments.model import Asset, ChainNetwork, Deposit, DepositKey, DepositState
from aiapi_payments.pricing import ManualRate
from aiapi_payments.repository import AccountDeposit, ChainHead, Repository
from aiapi_payments.settings import PaymentsSettings
from aiapi_shared.billing_api import ApiError
from aiapi_shared.bus import Bus
from aiapi_shared.console_api import (
    DEPOSIT_OWNERS_SUBJECT,
    DepositOwnersQuery,
    DepositOwnersReply,
)
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.payments_api import (
    ADDRESSES_SUBJECT,
    DEPOSITS_SUBJECT,
    SET_RATE_SUBJECT,
    AccountQuery,
    AddressesQuery,
    AddressesReply,
    DepositsReply,
    SetRateCommand,
    SetRateReply,
)

from tests.payments.service import ask, query
from tests.payments.wallets import (
    BTC_ADDRESS_0,
    BTC_VPUB,
    ETH_ADDRESS_0,
    ETH_XPUB,
    btc_deposit_address,
    eth_deposit_address,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def both_chains() -> PaymentsConfig:
    return build_config(
        PaymentsSettings(
            eth_rpc_url="http://127.0.0.1:9",
            eth_xpub=ETH_XPUB,
            eth_address_0=ETH_ADDRESS_0,
            btc_esplora_url="http://127.0.0.1:9",
            btc_network="regtest",
            btc_xpub=BTC_VPUB,
            btc_address_0=BTC_ADDRESS_0,
            price_sources="",
        )
    )


@dataclass
class Served:
    bus: Bus
    repository: Repository
    database_url: str


@pytest.fixture
async def served(database_url: str, bus: Bus) -> AsyncIterator[Served]:
    await migrate(database_url, schema="payments", package="aiapi_payments.migrations")
    async with open_pool(database_url, schema="payments") as pool:
        repository = Repository(pool)
        await PaymentsApi(repository, both_chains(), lambda: NOW).serve(bus)
        yield Served(bus, repository, database_url)


async def addresses(bus: Bus, account_id: str) -> dict[str, str]:
    reply = await ask(bus, ADDRESSES_SUBJECT, AccountQuery(account_id=account_id), AddressesReply)
    return {f"{a.asset}/{a.network}": a.address for a in reply.addresses}


async def test_one_address_per_enabled_asset_stable_and_never_shared(served: Served) -> None:
    first = await addresses(served.bus, "acc_a")
    assert list(first) == ["USDT/ethereum", "USDC/ethereum", "ETH/ethereum", "BTC/bitcoin"]
    # one Ethereum address per account, whatever the token
    assert first["USDT/ethereum"] == first["USDC/ethereum"] == first["ETH/ethereum"]
    assert await addresses(served.bus, "acc_a") == first  # stable: derived once, then stored
    others = await asyncio.gather(*(addresses(served.bus, f"acc_{i}") for i in range(8)))
    eth = [first["ETH/ethereum"], *(o["ETH/ethereum"] for o in others)]
    btc = [first["BTC/bitcoin"], *(o["BTC/bitcoin"] for o in others)]
    assert len(set(eth)) == len(set(btc)) == 9  # concurrent first requests: still distinct
    # Each is the external-chain address at its stored index, never the check address 0.
    rows = await query(
        served.database_url,
        "SELECT keychain, derivation_index, address FROM payments.addresses",
    )
    for keychain, index, address in rows:
        derive = eth_deposit_address if keychain == "evm" else btc_deposit_address
        assert index >= 1 and derive(index) == address
    assert ETH_ADDRESS_0 not in eth and BTC_ADDRESS_0 not in btc


async def test_without_allocate_only_the_addresses_given_are_read(served: Served) -> None:
    async def read(account_id: str) -> AddressesReply:
        query = AddressesQuery(account_id=account_id, allocate=False)
        return await ask(served.bus, ADDRESSES_SUBJECT, query, AddressesReply)

    untouched = await read("acc_new")
    assert (untouched.addresses, untouched.missing) == ([], 4)
    count = "SELECT count(*) FROM payments.addresses WHERE account_id = 'acc_new'"
    assert await query(served.database_url, count) == [(0,)]  # nothing derived
    given = await addresses(served.bus, "acc_new")
    again = await read("acc_new")
    assert again.missing == 0
    assert {f"{a.asset}/{a.network}": a.address for a in again.addresses} == given
    # With what the top-up card shows: the minimum (USDT's rate is par; no price source here).
    usdt = next(a for a in again.addresses if a.asset == "USDT")
    assert usdt.minimum_usd is not None and usdt.rate_source == "par"


def waiting_eth(tx: str, amount: int) -> AccountDeposit:
    deposit = Deposit(
        key=DepositKey(ChainNetwork.ETHEREUM, Asset.ETH, tx, 0),
        address=eth_deposit_address(1),
        amount=amount,
        state=DepositState.DETECTED,
        first_seen_at=NOW - timedelta(minutes=30),
        block_number=100,
        block_hash="0x" + "ab" * 32,
        confirmations=1,
    )
    return AccountDeposit("acc_r", deposit)


async def test_deposits_are_listed_with_state_confirmations_and_usd(served: Served) -> None:
    usdt = Deposit(
        key=DepositKey(ChainNetwork.ETHEREUM, Asset.USDT, "0x" + "01" * 32, 1),
        address=eth_deposit_address(1),
        amount=25_500_000,
        state=DepositState.CREDITED,
        first_seen_at=NOW,
        block_number=7,
        confirmations=5,
        rate_nano_usd=10**9,
        usd_nano=25_500_000_000,
        rate_source="par",
    )
    await served.repository.commit_watch(
        cursor=None,
        changes=[AccountDeposit("acc_r", usdt), waiting_eth("0x" + "02" * 32, 10**16)],
        events=[],
        head=(
            ChainNetwork.ETHEREUM,
            ChainHead(20, 16),
        ),  # the record says 5; the chain has moved on
    )
    reply = await ask(served.bus, DEPOSITS_SUBJECT, AccountQuery(account_id="acc_r"), DepositsReply)
    shown = [
        (d.asset, d.tx_hash[:4], d.position, d.amount, d.confirmations, d.state, d.usd)
        for d in reply.deposits
    ]
    assert shown == [
        ("USDT", "0x01", 1, "25.5", 14, "credited", 25_500_000_000),
        ("ETH", "0x02", 0, "0.01", 1, "detected", None),
    ]
    # Finality by the `finalized` tag: a deposit needs the node's current distance to it
    # (head 20, finalized 16: a block is final at 5 confirmations).
    assert [d.confirmations_required for d in reply.deposits] == [5, 5]
    wire = reply.model_dump(mode="json")["deposits"][0]
    assert (wire["amount"], wire["usd"]) == ("25.5", "25.50")
    none = await ask(served.bus, DEPOSITS_SUBJECT, AccountQuery(account_id="nobody"), DepositsReply)
    assert none.deposits == []


async def test_a_manual_rate_prices_the_waiting_deposits_and_is_audited(served: Served) -> None:
    await served.repository.commit_watch(
        cursor=None, changes=[waiting_eth("0x" + "03" * 32, 2 * 10**18)], events=[]
    )
    command = SetRateCommand(asset="ETH", usd=3_000 * 10**9, actor="ops@example.com")
    reply = await ask(served.bus, SET_RATE_SUBJECT, command, SetRateReply)
    assert (reply.asset, reply.usd, reply.set_at) == ("ETH", 3_000 * 10**9, NOW)
    priced = await query(
        served.database_url, "SELECT rate_nano_usd, rate_source FROM payments.deposits"
    )
    assert priced == [(3_000 * 10**9, "manual")]
    audit = await query(
        served.database_url,
        "SELECT asset, rate_nano_usd, actor, priced_deposits FROM payments.manual_rates",
    )
    assert audit == [("ETH", 3_000 * 10**9, "ops@example.com", [f"ethereum:ETH:0x{'03' * 32}:0"])]


async def test_refusals_carry_an_http_status(served: Served) -> None:
    async def refused(subject: str, payload: bytes) -> ApiError:
        return ApiError.model_validate_json(await served.bus.request(subject, payload, timeout_s=5))

    assert (await refused(SET_RATE_SUBJECT, b'{"asset": "ETH", "usd": "0"}')).status == 400
    assert (await refused(SET_RATE_SUBJECT, b'{"asset": "USDT", "usd": "1"}')).status == 400
    huge = b'{"asset": "BTC", "usd": "9300000000"}'  # past the bigint column, in nano-USD
    assert (await refused(SET_RATE_SUBJECT, huge)).status == 400
    assert (await refused(ADDRESSES_SUBJECT, b'{"account_id": " "}')).status == 400
    assert (await refused(DEPOSITS_SUBJECT, b"not json")).status == 400


async def test_addresses_say_what_a_payer_needs_minimum_confirmations_rate(
    served: Served,
) -> None:
    reply = await ask(
        served.bus, ADDRESSES_SUBJECT, AccountQuery(account_id="acc_p"), AddressesReply
    )
    cards = {a.asset: a for a in reply.addresses}
    usdt, eth, btc = cards["USDT"], cards["ETH"], cards["BTC"]
    assert (usdt.chain_id, eth.chain_id, btc.chain_id) == (1, 1, None)
    assert usdt.token_contract == "0xdAC17F958D2ee523a2206206994597C13D831ec7"
    assert eth.token_contract is None and btc.token_contract is None
    assert {a.minimum_usd for a in reply.addresses} == {1_000_000_000}
    assert (eth.finality, eth.confirmations) == ("finalized", None)
    assert (btc.finality, btc.confirmations) == ("confirmations", 2)
    # USDT is at par; ETH and BTC have no price source here and no manual rate yet.
    assert (usdt.rate_usd, usdt.rate_source) == (1_000_000_000, "par")
    assert eth.rate_usd is None and btc.rate_usd is None
    await served.repository.record_manual_rate(
        ManualRate(Asset.ETH, 3_000_000_000_000, NOW - timedelta(minutes=1)), "test"
    )
    again = await ask(
        served.bus, ADDRESSES_SUBJECT, AccountQuery(account_id="acc_p"), AddressesReply
    )
    eth = next(a for a in again.addresses if a.asset == "ETH")
    assert (eth.rate_usd, eth.rate_source) == (3_000_000_000_000, "manual")
    wire = eth.model_dump(mode="json")
    assert (wire["rate_usd"], wire["minimum_usd"]) == ("3000.00", "1.00")


async def test_a_deposit_address_or_transaction_names_its_account(served: Served) -> None:
    """The operator console's search: an address (any letter case) or a transaction hash (with
    or without 0x) finds the account; anything else finds nobody."""
    mine = await addresses(served.bus, "acc_found")
    await addresses(served.bus, "acc_other")
    tx = "0x" + "0c" * 32
    deposit = waiting_eth(tx, 10**16)
    await served.repository.commit_watch(
        cursor=None, changes=[AccountDeposit("acc_found", deposit.deposit)], events=[]
    )

    async def owners(text: str) -> list[tuple[str, str]]:
        reply = await ask(
            served.bus, DEPOSIT_OWNERS_SUBJECT, DepositOwnersQuery(text=text), DepositOwnersReply
        )
        return [(o.account_id, o.matched) for o in reply.owners]

    evm = mine["ETH/ethereum"]
    assert await owners(evm) == [("acc_found", "address")]
    assert await owners(evm.lower()) == [("acc_found", "address")]
    assert await owners(f"  {mine['BTC/bitcoin']} ") == [("acc_found", "address")]
    assert await owners(tx) == [("acc_found", "tx_hash")]
    assert await owners(tx.upper().replace("0X", "")) == [("acc_found", "tx_hash")]
    assert await owners("0x" + "0d" * 32) == []
