"""Several networks at once: two anvil processes with different chain ids (Base and Arbitrum
as AIAPI_EVM_CHAINS describes them), and anvil as the Ethereum-compatible JSON-RPC of a TRON
node. Real PostgreSQL, real NATS; watch cycles as the service runs them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiapi_payments.addresses import tron_from_hex
from aiapi_payments.config import PaymentsConfig, build_config
from aiapi_payments.depeg import DepegGuard
from aiapi_payments.ethereum import check_chain_id
from aiapi_payments.model import Asset, ChainNetwork, KeyChain
from aiapi_payments.outbox import outbox_relay
from aiapi_payments.policy import parse_usd
from aiapi_payments.pricing import Quote
from aiapi_payments.repository import Repository
from aiapi_payments.settings import PaymentsSettings
from aiapi_payments.tracking import EvmTracking, evm_watcher
from aiapi_shared.bus import Bus, decode_event
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.events.payments_v1 import DepositConfirmed, DepositReversed
from aiapi_shared.outbox import Outbox
from psycopg_pool import AsyncConnectionPool

from tests.payments.anvil import FINALITY_LAG, running_anvils
from tests.payments.chain import Chain, drivers
from tests.payments.service import query, stream_count
from tests.payments.wallets import (
    ETH_ADDRESS_0,
    ETH_XPUB,
    TRON_ADDRESS_0,
    TRON_XPUB,
    eth_deposit_address,
    tron_deposit_address,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BASE_ID, ARBITRUM_ID, TRON_ID = 8453, 42161, 728126428
USD = 10**6  # base units of a 6-decimal token


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    await migrate(database_url, schema="payments", package="aiapi_payments.migrations")
    async with open_pool(database_url, schema="payments") as opened:
        yield opened


@pytest.fixture
def urls(tmp_path: Path) -> Iterator[dict[int, str]]:
    with running_anvils(tmp_path, BASE_ID, ARBITRUM_ID, TRON_ID) as running:
        yield running


@pytest.fixture
async def chains(urls: dict[int, str]) -> AsyncIterator[dict[int, Chain]]:
    async with drivers(urls) as running:
        yield running


@dataclass
class Networks:
    """Each network's watch cycle as the service wires it, one repository, one relay."""

    repository: Repository
    config: PaymentsConfig
    relay: Outbox
    trackings: dict[str, EvmTracking]

    async def run(self, *networks: str) -> None:
        for name in networks or tuple(self.trackings):
            for _ in range(20):
                caught_up, _ = await self.trackings[name].cycle()
                if caught_up:
                    break
            else:
                raise AssertionError(f"{name} did not catch up")
        await self.relay.drain()

    async def address(self, account_id: str, keychain: KeyChain) -> str:
        stored = await self.repository.assign_address(
            account_id, keychain, partial(self.config.derive_from, keychain)
        )
        return stored.address

    async def states(self) -> list[tuple[str, str, str, int | None]]:
        records = await self.repository.account_deposits("acc_1")
        return sorted(
            (r.deposit.key.network, r.deposit.key.asset, r.deposit.state, r.deposit.usd_nano)
            for r in records
        )


async def networks(
    pool: AsyncConnectionPool, bus: Bus, chains: dict[int, Chain], **settings: Any
) -> Networks:
    await bus.ensure_streams()
    config = build_config(
        PaymentsSettings(
            eth_xpub=ETH_XPUB,
            eth_address_0=ETH_ADDRESS_0,
            **{"price_sources": "", **settings},
        )
    )
    band = config.depeg_band
    guard = None if band is None else DepegGuard(band, config.assets, config.price_max_age)
    repository = Repository(pool)
    trackings: dict[str, EvmTracking] = {}
    by_id = {chain_id: chain.w3 for chain_id, chain in chains.items()}
    for chain in config.evm:
        w3 = by_id[chain.chain_id]
        await check_chain_id(w3, chain.chain_id, chain.chain_id_setting)
        trackings[chain.network.value] = EvmTracking(
            repository, config, chain, partial(evm_watcher, w3, chain), lambda: NOW, guard
        )
    return Networks(repository, config, outbox_relay(pool, bus), trackings)


async def base_and_arbitrum(
    pool: AsyncConnectionPool,
    bus: Bus,
    chains: dict[int, Chain],
    urls: dict[int, str],
    **settings: Any,
) -> tuple[Networks, Any, Any, Any]:
    """USDC credits on Base, USDT on Arbitrum; a lookalike "USDC" on Base credits nothing."""
    base, arbitrum = chains[BASE_ID], chains[ARBITRUM_ID]
    usdc = await base.deploy_token("USDC")
    lookalike = await base.deploy_token("USDC")
    usdt = await arbitrum.deploy_token("USDT")
    document = [
        {
            "network": "base",
            "rpc_url": urls[BASE_ID],
            "tokens": {"USDC": usdc.address},
            "start_block": await base.head() + 1,
        },
        {
            "network": "arbitrum",
            "rpc_url": urls[ARBITRUM_ID],
            "tokens": [{"symbol": "USDT", "contract": usdt.address, "decimals": 6}],
            "start_block": await arbitrum.head() + 1,
        },
    ]
    nets = await networks(pool, bus, chains, evm_chains=json.dumps(document), **settings)
    return nets, usdc, lookalike, usdt


@dataclass
class Pair:
    """Base (USDC, and a lookalike "USDC") and Arbitrum (USDT) watched together."""

    nets: Networks
    base: Chain
    arbitrum: Chain
    usdc: Any
    lookalike: Any
    usdt: Any


@pytest.fixture
async def pair(
    pool: AsyncConnectionPool, bus: Bus, chains: dict[int, Chain], urls: dict[int, str]
) -> Pair:
    nets, usdc, lookalike, usdt = await base_and_arbitrum(pool, bus, chains, urls)
    return Pair(nets, chains[BASE_ID], chains[ARBITRUM_ID], usdc, lookalike, usdt)


async def test_usdc_on_one_network_and_usdt_on_another_each_credit_exactly_once(
    pair: Pair, bus: Bus, database_url: str
) -> None:
    nets, base, arbitrum, usdc, lookalike, usdt = (
        pair.nets, pair.base, pair.arbitrum, pair.usdc, pair.lookalike, pair.usdt
    )  # fmt: skip
    address = await nets.address("acc_1", KeyChain.EVM)
    assert address == eth_deposit_address(1)  # the same address on both networks
    await base.pay(usdc, address, 12 * USD)
    await base.pay(lookalike, address, 50 * USD)  # same symbol, another contract
    await arbitrum.pay(usdt, address, 7 * USD)
    await nets.run()
    assert await nets.states() == [
        ("arbitrum", "USDT", "detected", 7 * 10**9),
        ("base", "USDC", "detected", 12 * 10**9),
    ]
    await base.mine(FINALITY_LAG)
    await arbitrum.mine(FINALITY_LAG)
    await nets.run()
    await base.mine(3)
    await arbitrum.mine(3)
    await nets.run()
    assert await nets.states() == [
        ("arbitrum", "USDT", "credited", 7 * 10**9),
        ("base", "USDC", "credited", 12 * 10**9),
    ]
    assert await stream_count(bus, DepositConfirmed.subject) == 2
    ids = sorted(
        row[0] for row in await query(database_url, "SELECT deposit_id FROM payments.deposits")
    )
    assert [i.split(":")[:2] for i in ids] == [["arbitrum", "USDT"], ["base", "USDC"]]
    event = decode_event(
        DepositConfirmed,
        (await bus.js.get_last_msg("PAYMENTS", DepositConfirmed.subject)).data or b"",
    )
    assert event.network in ("base", "arbitrum") and event.amount in ("12", "7")


async def test_a_reorg_on_one_network_leaves_the_other_untouched(
    pair: Pair, bus: Bus, database_url: str
) -> None:
    nets, base, arbitrum, usdc, usdt = pair.nets, pair.base, pair.arbitrum, pair.usdc, pair.usdt
    address = await nets.address("acc_1", KeyChain.EVM)
    snapshot = await arbitrum.snapshot()
    await base.pay(usdc, address, 12 * USD)
    await arbitrum.pay(usdt, address, 7 * USD)
    await base.mine(FINALITY_LAG)
    await arbitrum.mine(FINALITY_LAG)
    await nets.run()
    assert [s[2] for s in await nets.states()] == ["credited", "credited"]
    base_row = "SELECT state, block_hash, updated_at FROM payments.deposits WHERE network = 'base'"
    before = await query(database_url, base_row)

    await arbitrum.revert(snapshot)  # Arbitrum's history is rewritten past its finality
    await arbitrum.mine(FINALITY_LAG + 3)
    await base.mine(2)
    await nets.run()
    assert await nets.states() == [
        ("arbitrum", "USDT", "reversed", 7 * 10**9),
        ("base", "USDC", "credited", 12 * 10**9),
    ]
    assert await query(database_url, base_row) == before  # not even rewritten
    assert await stream_count(bus, DepositReversed.subject) == 1
    reversed_event = decode_event(
        DepositReversed,
        (await bus.js.get_last_msg("PAYMENTS", DepositReversed.subject)).data or b"",
    )
    assert reversed_event.deposit_id.startswith("arbitrum:USDT:0x")
    assert await stream_count(bus, DepositConfirmed.subject) == 2


async def test_trc20_usdt_credits_once_solidified_and_a_reorged_transfer_never(
    pool: AsyncConnectionPool,
    bus: Bus,
    chains: dict[int, Chain],
    database_url: str,
    urls: dict[int, str],
) -> None:
    """anvil plays a TRON node's JSON-RPC; the test token's 0x address, in TRON form, is the
    configured TRC-20 contract. Addresses and transaction ids come out in TRON's forms."""
    tron = chains[TRON_ID]
    token = await tron.deploy_token("USDT")
    nets = await networks(
        pool,
        bus,
        chains,
        tron_rpc_url=urls[TRON_ID],
        tron_chain_id=TRON_ID,
        tron_xpub=TRON_XPUB,
        tron_address_0=TRON_ADDRESS_0,
        tron_usdt_contract=tron_from_hex(token.address),
        tron_confirmations=FINALITY_LAG + 3,
        tron_start_block=await tron.head() + 1,
    )
    address = await nets.address("acc_1", KeyChain.TRON)
    assert address == tron_deposit_address(1) and address.startswith("T")
    node_address = nets.config.tron.to_node(address) if nets.config.tron else ""
    credited_tx = await tron.pay(token, node_address, 30 * USD)
    await tron.mine(FINALITY_LAG)  # solidified (the node's finalized tag) but not deep enough
    await nets.run()
    assert await nets.states() == [("tron", "USDT", "detected", 30 * 10**9)]

    snapshot = await tron.snapshot()
    await tron.pay(token, node_address, 5 * USD)  # about to be reorganised away
    await nets.run()
    assert sorted(s[2] for s in await nets.states()) == ["detected", "detected"]
    await tron.revert(snapshot)
    await tron.mine(FINALITY_LAG + 3)
    await nets.run()
    await tron.mine(3)
    await nets.run()
    assert await nets.states() == [
        ("tron", "USDT", "credited", 30 * 10**9),
        ("tron", "USDT", "orphaned", 5 * 10**9),
    ]
    assert await stream_count(bus, DepositConfirmed.subject) == 1
    rows = await query(
        database_url,
        "SELECT deposit_id, address FROM payments.deposits WHERE state = 'credited'",
    )
    assert rows == [(f"tron:USDT:{credited_tx.removeprefix('0x')}:0", address)]
    assert ChainNetwork.TRON in nets.config.networks


async def test_the_depeg_guard_pauses_one_token_until_its_price_is_back_in_band(
    pool: AsyncConnectionPool,
    bus: Bus,
    chains: dict[int, Chain],
    urls: dict[int, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, arbitrum = chains[BASE_ID], chains[ARBITRUM_ID]
    nets, usdc, _, usdt = await base_and_arbitrum(
        pool,
        bus,
        chains,
        urls,
        depeg_band="0.98-1.02",
        price_sources="ticker=http://127.0.0.1:9/{asset}|price",
    )
    seen = NOW - timedelta(seconds=10)

    async def quote(asset: Asset, usd: str) -> None:
        quotes = [Quote("ticker", asset, parse_usd(usd), seen)]
        await nets.repository.add_quotes(quotes, prune_before=NOW - timedelta(days=1))

    await quote(Asset.USDC, "0.95")  # USDC off its peg; USDT on it
    await quote(Asset.USDT, "1.001")
    address = await nets.address("acc_1", KeyChain.EVM)
    await base.pay(usdc, address, 12 * USD)
    await arbitrum.pay(usdt, address, 7 * USD)
    await base.mine(FINALITY_LAG)
    await arbitrum.mine(FINALITY_LAG)
    await nets.run()
    await base.mine(2)
    await nets.run()
    assert await nets.states() == [
        ("arbitrum", "USDT", "credited", 7 * 10**9),
        ("base", "USDC", "detected", 12 * 10**9),  # final, but its token is paused: it waits
    ]
    alerts = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
    assert alerts == [
        "ALERT: USDC depeg guard: 0.95 USD (median(ticker)), outside 0.98-1.02 USD;"
        " crediting of USDC paused"
    ]
    await nets.run()  # still paused: the alert is not repeated every cycle
    assert len([r for r in caplog.records if "ALERT" in r.getMessage()]) == 1

    seen = NOW - timedelta(seconds=5)
    await quote(Asset.USDC, "0.999")
    await nets.run()
    assert await nets.states() == [
        ("arbitrum", "USDT", "credited", 7 * 10**9),
        ("base", "USDC", "credited", 12 * 10**9),  # at the peg, as first seen
    ]
    assert await stream_count(bus, DepositConfirmed.subject) == 2
