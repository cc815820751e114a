"""The sweep plan: balances asked of the nodes (a real anvil as Base, anvil as a TRON node, the
Esplora-shaped server), paths from the account keys, an unsigned description; and the CLI that
writes it to a file for the operator's signing wallet."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiapi_cli.admin import admin_main
from aiapi_payments.addresses import tron_from_hex
from aiapi_payments.api import PaymentsApi
from aiapi_payments.balances import BalanceReader
from aiapi_payments.bitcoin import BitcoinWatcher, EsploraBackend
from aiapi_payments.config import build_config
from aiapi_payments.keys import parse_extended_public_key
from aiapi_payments.model import Asset, KeyChain
from aiapi_payments.outbox import outbox_relay
from aiapi_payments.pricing import ManualRate
from aiapi_payments.repository import Repository
from aiapi_payments.settings import PaymentsSettings
from aiapi_payments.sweep import SweepError, check_destination, derivation_path
from aiapi_payments.tracking import BitcoinTracking, EvmTracking, evm_watcher
from aiapi_shared.billing_api import ApiError
from aiapi_shared.bus import Bus
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.payments_api import SWEEP_PLAN_SUBJECT, SweepPlanQuery, SweepPlanReply
from web3 import AsyncHTTPProvider, AsyncWeb3

from tests.payments.anvil import FINALITY_LAG, running_anvil, running_anvils
from tests.payments.chain import Chain, drivers
from tests.payments.fake_esplora import FakeEsplora
from tests.payments.service import ask
from tests.payments.wallets import (
    BTC_ADDRESS_0,
    BTC_VPUB,
    ETH_ADDRESS_0,
    ETH_XPUB,
    TRON_ADDRESS_0,
    TRON_XPUB,
    eth_deposit_address,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BASE_ID, TRON_ID = 8453, 728126428
USD = 10**6
DESTINATION = "0x" + "ab" * 20


def test_paths_and_destinations() -> None:
    eth = parse_extended_public_key(ETH_XPUB)
    assert derivation_path(KeyChain.EVM, eth, 7) == "m/44'/60'/0'/0/7"
    assert derivation_path(KeyChain.TRON, parse_extended_public_key(TRON_XPUB), 2) == (
        "m/44'/195'/0'/0/2"
    )
    btc = parse_extended_public_key(BTC_VPUB)
    assert derivation_path(KeyChain.BITCOIN, btc, 3, bitcoin_coin=1) == "m/84'/1'/0'/0/3"
    assert check_destination(KeyChain.EVM, DESTINATION.upper().replace("0X", "0x"), None) == (
        "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    )
    assert check_destination(KeyChain.TRON, TRON_ADDRESS_0, None) == TRON_ADDRESS_0
    for keychain, bad in (
        (KeyChain.EVM, "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaC"),  # checksum fails
        (KeyChain.TRON, ETH_ADDRESS_0),
    ):
        with pytest.raises(SweepError, match=keychain.value):
            check_destination(keychain, bad, None)


@pytest.fixture
def urls(tmp_path: Path) -> Iterator[dict[int, str]]:
    with running_anvils(tmp_path, BASE_ID, TRON_ID) as running:
        yield running


@pytest.fixture
async def chains(urls: dict[int, str]) -> AsyncIterator[dict[int, Chain]]:
    async with drivers(urls) as running:
        yield running


async def test_the_plan_lists_balances_paths_and_gas_needs_per_network(
    database_url: str,
    bus: Bus,
    chains: dict[int, Chain],
    urls: dict[int, str],
    esplora: FakeEsplora,
    esplora_client: httpx.AsyncClient,
) -> None:
    await bus.ensure_streams()
    base, tron = chains[BASE_ID], chains[TRON_ID]
    usdc = await base.deploy_token("USDC")
    trc20 = await tron.deploy_token("USDT")
    config = build_config(
        PaymentsSettings(
            price_sources="",
            eth_xpub=ETH_XPUB,
            eth_address_0=ETH_ADDRESS_0,
            evm_chains=json.dumps(
                [
                    {
                        "network": "base",
                        "rpc_url": urls[BASE_ID],
                        "tokens": {"USDC": usdc.address},
                        "start_block": await base.head() + 1,
                    }
                ]
            ),
            tron_rpc_url=urls[TRON_ID],
            tron_chain_id=TRON_ID,
            tron_xpub=TRON_XPUB,
            tron_address_0=TRON_ADDRESS_0,
            tron_usdt_contract=tron_from_hex(trc20.address),
            tron_confirmations=2,
            tron_start_block=await tron.head() + 1,
            btc_esplora_url="http://unused",
            btc_network="regtest",
            btc_xpub=BTC_VPUB,
            btc_address_0=BTC_ADDRESS_0,
        )
    )
    await migrate(database_url, schema="payments", package="aiapi_payments.migrations")
    async with open_pool(database_url, schema="payments") as pool:
        repository = Repository(pool)
        nodes = {BASE_ID: base.w3, TRON_ID: tron.w3}
        trackings: list[Any] = [
            EvmTracking(
                repository,
                config,
                chain,
                partial(evm_watcher, nodes[chain.chain_id], chain),
                lambda: NOW,
            )
            for chain in config.evm
        ]
        assert config.bitcoin is not None
        backend = EsploraBackend(esplora_client)
        trackings.append(
            BitcoinTracking(
                repository, config, config.bitcoin, BitcoinWatcher(backend), lambda: NOW
            )
        )

        async def address(account: str, keychain: KeyChain) -> str:
            stored = await repository.assign_address(
                account, keychain, partial(config.derive_from, keychain)
            )
            return stored.address

        first, second = await address("acc_1", KeyChain.EVM), await address("acc_2", KeyChain.EVM)
        never_paid = await address("acc_3", KeyChain.EVM)
        tron_address = await address("acc_1", KeyChain.TRON)
        btc_address = await address("acc_1", KeyChain.BITCOIN)
        await base.pay(usdc, first, 12 * USD)
        await base.pay(usdc, second, 3_500_000)
        # The operator funded the first address's fee already; the second has no ETH for one.
        await base.w3.eth.send_transaction(
            {"from": base.accounts[1], "to": first, "value": AsyncWeb3.to_wei(1, "gwei")}
        )
        assert config.tron is not None
        await tron.pay(trc20, config.tron.to_node(tron_address), 40 * USD)
        script = config.bitcoin.derive(1).script
        assert script is not None
        esplora.send((btc_address, script, 250_000))
        await base.mine(FINALITY_LAG + 1)
        await tron.mine(FINALITY_LAG + 2)
        esplora.mine(3)
        await repository.record_manual_rate(ManualRate(Asset.BTC, 60_000 * 10**9, NOW), "ops")
        for tracking in trackings:
            for _ in range(10):
                if (await tracking.cycle())[0]:
                    break
        await outbox_relay(pool, bus).drain()
        # A customer's later payment the service has not credited yet also shows: the node,
        # not the deposit records, says what an address holds.
        await base.pay(usdc, first, 1 * USD)

        balances = BalanceReader(
            config, {c.network: nodes[c.chain_id] for c in config.evm}, backend
        )
        await PaymentsApi(repository, config, lambda: NOW, balances).serve(bus)
        query = SweepPlanQuery(destinations={"evm": DESTINATION, "tron": TRON_ADDRESS_0})
        plan = await ask(bus, SWEEP_PLAN_SUBJECT, query, SweepPlanReply)

    assert plan.unsigned and plan.unreachable == []
    rows = [
        (t.network, t.asset, t.address, t.derivation_path, t.amount, t.to) for t in plan.transfers
    ]
    evm_to = check_destination(KeyChain.EVM, DESTINATION, None)
    assert rows == [
        ("base", "USDC", first, "m/44'/60'/0'/0/1", "13", evm_to),
        ("base", "USDC", second, "m/44'/60'/0'/0/2", "3.5", evm_to),
        ("bitcoin", "BTC", btc_address, "m/84'/1'/0'/0/1", "0.0025", None),
        ("tron", "USDT", tron_address, "m/44'/195'/0'/0/1", "40", TRON_ADDRESS_0),
    ]
    assert never_paid not in {t.address for t in plan.transfers}
    assert plan.transfers[0].contract == usdc.address
    assert plan.transfers[3].contract == tron_from_hex(trc20.address)
    assert plan.transfers[0].amount_base_units == "13000000"
    gas = {(g.network, g.address, g.coin, g.balance) for g in plan.needs_gas}
    assert gas == {("base", second, "ETH", "0"), ("tron", tron_address, "TRX", "0")}
    totals = {(t.network, t.asset): Decimal(t.amount) for t in plan.totals}
    assert totals == {
        ("base", "USDC"): Decimal("16.5"),
        ("bitcoin", "BTC"): Decimal("0.0025"),
        ("tron", "USDT"): Decimal("40"),
    }
    assert first == eth_deposit_address(1)


async def test_a_bad_destination_is_refused_and_a_silent_node_is_reported(
    database_url: str, bus: Bus, tmp_path: Path
) -> None:
    with running_anvil(tmp_path / "base.log", BASE_ID) as url:
        document = [{"network": "base", "rpc_url": url, "tokens": {"USDC": "0x" + "11" * 20}}]
        config = build_config(
            PaymentsSettings(
                price_sources="",
                eth_xpub=ETH_XPUB,
                eth_address_0=ETH_ADDRESS_0,
                evm_chains=json.dumps(document),
            )
        )
        await migrate(database_url, schema="payments", package="aiapi_payments.migrations")
        async with open_pool(database_url, schema="payments") as pool:
            repository = Repository(pool)
            address = await repository.assign_address(
                "acc_1", KeyChain.EVM, partial(config.derive_from, KeyChain.EVM)
            )
            # A credited deposit makes the address worth asking about.
            await pool_execute(
                pool,
                "INSERT INTO deposits (network, asset, tx_hash, position, account_id, address,"
                " amount, state, first_seen_at) VALUES ('base', 'USDC', '0x01', 0, 'acc_1', %s,"
                " 5, 'credited', now())",
                address.address,
            )
            silent = AsyncWeb3(AsyncHTTPProvider("http://127.0.0.1:9"))
            balances = BalanceReader(config, {"base": silent}, None)
            await PaymentsApi(repository, config, lambda: NOW, balances).serve(bus)
            data = await bus.request(
                SWEEP_PLAN_SUBJECT, b'{"destinations": {"evm": "0x1234"}}', timeout_s=10
            )
            refused = ApiError.model_validate_json(data)
            assert (refused.status, "evm destination" in refused.message) == (400, True)
            # TRON is off here: a destination for it is a mistake, not something to ignore.
            data = await bus.request(
                SWEEP_PLAN_SUBJECT,
                SweepPlanQuery(destinations={"tron": TRON_ADDRESS_0}).model_dump_json().encode(),
                timeout_s=10,
            )
            refused = ApiError.model_validate_json(data)
            assert (refused.status, refused.message) == (400, "no network uses the tron key here")
            plan = await ask(bus, SWEEP_PLAN_SUBJECT, SweepPlanQuery(), SweepPlanReply)
            assert (plan.unreachable, plan.transfers) == (["base"], [])


async def pool_execute(pool: Any, statement: str, *params: Any) -> None:
    async with pool.connection() as conn:
        await conn.execute(statement, params)


def test_the_cli_sends_the_destinations_and_writes_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[httpx.Request] = []
    plan = {"format": "aiapi-sweep-plan/1", "unsigned": True, "transfers": []}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=plan)

    out = tmp_path / "plan.json"
    code = admin_main(
        ["sweep-plan", "--to-evm", DESTINATION, "--to-btc", "bc1qexample", "--out", str(out)],
        environ={"AIAPI_ADMIN_TOKEN": "t", "AIAPI_ADMIN_URL": "http://accounts"},
        transport=httpx.MockTransport(handler),
    )
    assert code == 0
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/admin/v1/sweep-plan")
    assert json.loads(request.content) == {
        "destinations": {"evm": DESTINATION, "bitcoin": "bc1qexample"}
    }
    assert json.loads(out.read_text()) == plan
    assert json.loads(capsys.readouterr().out) == plan
