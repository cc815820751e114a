"""Watch cycles as the service runs them: chain -> book -> PostgreSQL + outbox -> JetStream.

Real anvil, real PostgreSQL, real NATS; the Bitcoin side against the Esplora-shaped server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiapi_payments.bitcoin import BitcoinWatcher, EsploraBackend
from aiapi_payments.config import PaymentsConfig, build_config
from aiapi_payments.ethereum import EthereumWatcher
from aiapi_payments.model import Asset, ChainNetwork
from aiapi_payments.outbox import outbox_relay
from aiapi_payments.pricing import ManualRate
from aiapi_payments.repository import PostgresCursorStore, Repository
from aiapi_payments.settings import PaymentsSettings
from aiapi_payments.tracking import BitcoinTracking, EthereumTracking
from aiapi_shared.bus import Bus, decode_event
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.events.payments_v1 import DepositConfirmed, DepositDetected, DepositReversed
from aiapi_shared.outbox import Outbox
from psycopg_pool import AsyncConnectionPool

from tests.payments.anvil import FINALITY_LAG
from tests.payments.chain import Chain
from tests.payments.fake_esplora import FakeEsplora
from tests.payments.service import query, stream_count
from tests.payments.wallets import BTC_ADDRESS_0, BTC_VPUB, ETH_ADDRESS_0, ETH_XPUB

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
D_DETECTED, D_CONFIRMED, D_REVERSED = (
    DepositDetected.subject,
    DepositConfirmed.subject,
    DepositReversed.subject,
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    await migrate(database_url, schema="payments", package="aiapi_payments.migrations")
    async with open_pool(database_url, schema="payments") as opened:
        yield opened


@dataclass
class Pipeline:
    repository: Repository
    config: PaymentsConfig
    relay: Outbox
    tracking: Any

    async def run(self, cycles: int = 1) -> None:
        for _ in range(cycles):
            caught_up = False
            for _ in range(20):
                caught_up, _ = await self.tracking.cycle()
                if caught_up:
                    break
            assert caught_up
        await self.relay.drain()

    async def address(self, account_id: str, network: ChainNetwork) -> str:
        keychain = self.config.keychain(network)
        stored = await self.repository.assign_address(
            account_id, keychain, lambda index: self.config.derive_from(keychain, index)
        )
        return stored.address

    async def states(self) -> list[tuple[str, str, int | None]]:
        records = await self.repository.account_deposits("acc_1")
        return sorted((r.deposit.key.asset, r.deposit.state, r.deposit.usd_nano) for r in records)


def ethereum_pipeline(
    pool: AsyncConnectionPool, bus: Bus, chain: Chain, token: str, start: int
) -> Pipeline:
    config = build_config(
        PaymentsSettings(
            eth_rpc_url="http://unused",
            eth_xpub=ETH_XPUB,
            eth_address_0=ETH_ADDRESS_0,
            usdt_contract=token,
            price_sources="",
        )
    )
    assert config.ethereum is not None
    repository = Repository(pool)

    def watcher(cursor: PostgresCursorStore) -> EthereumWatcher:
        return EthereumWatcher(
            chain.w3, tokens={token: Asset.USDT}, cursor=cursor, start_block=start
        )

    tracking = EthereumTracking(repository, config, config.ethereum, watcher, lambda: NOW)
    return Pipeline(repository, config, outbox_relay(pool, bus), tracking)


async def pay(chain: Chain, token: Any, to: str, amount: int) -> None:
    tx = await token.functions.transfer(to, amount).transact({"from": chain.accounts[0]})
    await chain.w3.eth.wait_for_transaction_receipt(tx)


async def test_a_usdt_deposit_is_announced_confirmed_and_credited_once(
    pool: AsyncConnectionPool, bus: Bus, chain: Chain
) -> None:
    await bus.ensure_streams()
    token = await chain.deploy_token()
    pipeline = ethereum_pipeline(pool, bus, chain, token.address, await chain.head() + 1)
    address = await pipeline.address("acc_1", ChainNetwork.ETHEREUM)
    await pay(chain, token, address, 25_500_000)
    await pay(chain, token, address, 400_000)  # 0.40 USD: below the 1.00 minimum
    await pipeline.run()
    assert await pipeline.states() == [
        ("USDT", "below_minimum", 400_000_000),
        ("USDT", "detected", 25_500_000_000),
    ]
    await chain.mine(FINALITY_LAG)
    await pipeline.run()
    assert await pipeline.states() == [
        ("USDT", "below_minimum", 400_000_000),
        ("USDT", "credited", 25_500_000_000),
    ]

    # A fresh process (new cursor store, new relay) resumes from the stored cursor: nothing new.
    restarted = ethereum_pipeline(pool, bus, chain, token.address, 0)
    await chain.mine(3)
    await restarted.run()
    assert await stream_count(bus, D_CONFIRMED) == 1
    assert await stream_count(bus, D_DETECTED) == 2

    message = await bus.js.get_last_msg("PAYMENTS", D_CONFIRMED)
    event = decode_event(DepositConfirmed, message.data or b"")
    assert event.event_id == f"{event.deposit_id}:confirmed"
    assert event.deposit_id.startswith("ethereum:USDT:0x")
    assert (event.account_id, event.amount, event.usd, event.rate_usd) == (
        "acc_1",
        "25.5",
        25_500_000_000,
        10**9,
    )
    assert message.headers is not None and message.headers["Nats-Msg-Id"] == event.event_id


async def test_a_reorg_deeper_than_finality_reverses_a_credited_deposit(
    pool: AsyncConnectionPool, bus: Bus, chain: Chain
) -> None:
    await bus.ensure_streams()
    token = await chain.deploy_token()
    pipeline = ethereum_pipeline(pool, bus, chain, token.address, await chain.head() + 1)
    address = await pipeline.address("acc_1", ChainNetwork.ETHEREUM)
    snapshot = await chain.snapshot()
    await pay(chain, token, address, 5_000_000)
    await chain.mine(FINALITY_LAG)
    await pipeline.run()
    assert await pipeline.states() == [("USDT", "credited", 5_000_000_000)]
    await chain.revert(snapshot)  # beyond `finalized`: a broken finality
    await chain.mine(FINALITY_LAG + 3)
    await pipeline.run()
    assert await pipeline.states() == [("USDT", "reversed", 5_000_000_000)]
    reversed_event = decode_event(
        DepositReversed, (await bus.js.get_last_msg("PAYMENTS", D_REVERSED)).data or b""
    )
    assert (reversed_event.usd, reversed_event.account_id) == (5_000_000_000, "acc_1")
    assert await stream_count(bus, D_CONFIRMED) == 1


async def test_bitcoin_without_a_rate_waits_until_an_operator_sets_one(
    pool: AsyncConnectionPool,
    database_url: str,
    bus: Bus,
    esplora: FakeEsplora,
    esplora_client: httpx.AsyncClient,
) -> None:
    await bus.ensure_streams()
    config = build_config(
        PaymentsSettings(
            btc_esplora_url="http://unused",
            btc_network="regtest",
            btc_xpub=BTC_VPUB,
            btc_address_0=BTC_ADDRESS_0,
            price_sources="",
        )
    )
    assert config.bitcoin is not None
    repository = Repository(pool)
    watcher = BitcoinWatcher(EsploraBackend(esplora_client))
    tracking = BitcoinTracking(repository, config, config.bitcoin, watcher, lambda: NOW)
    pipeline = Pipeline(repository, config, outbox_relay(pool, bus), tracking)
    address = await pipeline.address("acc_1", ChainNetwork.BITCOIN)
    script = config.bitcoin.derive(1).script
    assert script is not None
    txid = esplora.send((address, script, 150_000), ("bcrt1qchange", "0014" + "cd" * 20, 10))
    await pipeline.run()
    esplora.mine(3)
    await pipeline.run()
    assert await pipeline.states() == [("BTC", "detected", None)]  # final, but no rate: waits
    await repository.record_manual_rate(ManualRate(Asset.BTC, 60_000 * 10**9, NOW), "ops")
    await pipeline.run()
    assert await pipeline.states() == [("BTC", "credited", 90 * 10**9)]  # 0.0015 BTC x 60,000
    rows = await query(
        database_url, "SELECT tx_hash, position, confirmations FROM payments.deposits"
    )
    assert rows == [(txid, 0, 3)]
    assert await stream_count(bus, D_CONFIRMED) == 1
