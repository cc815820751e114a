"""The Ethereum watcher against a real anvil node and a Vyper ERC-20 compiled at test time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiapi_payments.addresses import eth_address
from aiapi_payments.book import keys_in_blocks, observe
from aiapi_payments.ethereum import (
    ChainMismatch,
    EthereumWatcher,
    MemoryCursorStore,
    check_chain_id,
)
from aiapi_payments.keys import parse_extended_public_key
from aiapi_payments.model import Asset, ChainNetwork, Deposit, DepositKey, DepositState
from aiapi_payments.policy import EthFinality, parse_usd
from aiapi_payments.pricing import RateChoice, rate_at_first_sight
from web3 import AsyncWeb3

from tests.payments.anvil import FINALITY_LAG
from tests.payments.chain import Chain
from tests.payments.hd import PrivateNode, seed_from_mnemonic
from tests.payments.test_keys import ABANDON

NOW = datetime(2026, 1, 1, tzinfo=UTC)
XPUB = (
    PrivateNode.master(seed_from_mnemonic(ABANDON))
    .path("m/44'/60'/0'")
    .neuter(bytes.fromhex("0488b21e"))
    .serialize()
)
ACCOUNT = parse_extended_public_key(XPUB)
ADDR = [eth_address(ACCOUNT.deposit_key(i)) for i in range(3)]
USDT = 10**6
ETH_RATE = RateChoice(parse_usd("3000"), "test")
D = DepositState


class Tracker:
    """Watcher + book as the service wires them, with the records in memory."""

    def __init__(self, w3: AsyncWeb3[Any], token: str, start_block: int, batch_size: int = 100):
        self.cursor = MemoryCursorStore()
        self.watcher = EthereumWatcher(
            w3,
            tokens={token: Asset.USDT},
            cursor=self.cursor,
            start_block=start_block,
            batch_size=batch_size,
        )
        self.finality = EthFinality.parse("finalized")
        self.deposits: dict[DepositKey, Deposit] = {}
        self.polls = 0

    def _rate(self, asset: Asset, at: datetime) -> RateChoice | None:
        return ETH_RATE if asset is Asset.ETH else rate_at_first_sight(asset, at, [], [])

    async def sync(self) -> dict[DepositKey, Deposit]:
        while True:
            self.polls += 1
            scan = await self.watcher.poll(ADDR)
            seen = {t.key for t in scan.transfers}
            gone = keys_in_blocks(self.deposits.values(), {b.hash for b in scan.removed}) - seen
            self.deposits.update(
                observe(
                    self.deposits,
                    seen=scan.transfers,
                    gone=gone,
                    head=scan.head,
                    now=NOW,
                    rate_at=self._rate,
                    is_final=lambda d, head, finalized=scan.finalized: self.finality.is_final(
                        d.block_number, head, finalized
                    ),
                    minimum_nano=lambda asset: parse_usd("1"),
                )
            )
            if scan.caught_up:
                return self.deposits

    def only(self) -> Deposit:
        assert len(self.deposits) == 1, self.deposits
        return next(iter(self.deposits.values()))


async def start(chain: Chain) -> tuple[Any, Tracker]:
    token = await chain.deploy_token()
    tracker = Tracker(chain.w3, token.address, start_block=await chain.head() + 1)
    return token, tracker


async def transfer(token: Any, chain: Chain, to: str, amount: int, sender: int = 0) -> Any:
    tx = await token.functions.transfer(to, amount).transact({"from": chain.accounts[sender]})
    return await chain.w3.eth.wait_for_transaction_receipt(tx)


async def test_the_node_must_serve_the_configured_chain(w3: AsyncWeb3[Any]) -> None:
    await check_chain_id(w3, 31337)
    with pytest.raises(ChainMismatch, match="31337"):
        await check_chain_id(w3, 1)


async def test_usdt_deposit_is_detected_then_confirmed_at_finalized(chain: Chain) -> None:
    token, tracker = await start(chain)
    receipt = await transfer(token, chain, ADDR[0], 25_500_000)
    await tracker.sync()
    deposit = tracker.only()
    assert deposit.key == DepositKey(
        ChainNetwork.ETHEREUM, Asset.USDT, AsyncWeb3.to_hex(receipt["transactionHash"]), 0
    )
    assert (deposit.state, deposit.confirmations, deposit.address) == (D.DETECTED, 1, ADDR[0])
    await chain.mine(FINALITY_LAG - 1)
    await tracker.sync()
    assert tracker.only().state is D.DETECTED  # the head moved, finalized not yet
    await chain.mine(1)
    await tracker.sync()
    deposit = tracker.only()
    assert (deposit.state, deposit.confirmations) == (D.CONFIRMED, FINALITY_LAG + 1)
    assert deposit.usd_nano == parse_usd("25.5")


async def test_native_eth_deposit_is_priced_at_first_sight(chain: Chain) -> None:
    _, tracker = await start(chain)
    tx = await chain.w3.eth.send_transaction(
        {"from": chain.accounts[1], "to": ADDR[1], "value": 10**16}
    )
    await chain.mine(FINALITY_LAG)
    await tracker.sync()
    deposit = tracker.only()
    assert deposit.key == DepositKey(ChainNetwork.ETHEREUM, Asset.ETH, AsyncWeb3.to_hex(tx), 0)
    assert (deposit.state, deposit.amount, deposit.usd_nano) == (
        D.CONFIRMED,
        10**16,
        parse_usd("30"),
    )


async def test_a_look_alike_token_is_ignored(chain: Chain) -> None:
    _, tracker = await start(chain)
    fake = await chain.deploy_token(symbol="USDT")
    await transfer(fake, chain, ADDR[0], 1000 * USDT)
    await chain.mine(FINALITY_LAG)
    assert await tracker.sync() == {}


async def test_zero_value_is_ignored_and_below_minimum_is_recorded(chain: Chain) -> None:
    token, tracker = await start(chain)
    await transfer(token, chain, ADDR[0], 0)
    await transfer(token, chain, ADDR[1], USDT // 2)
    await chain.mine(FINALITY_LAG)
    await tracker.sync()
    deposit = tracker.only()
    assert (deposit.address, deposit.state) == (ADDR[1], D.BELOW_MINIMUM)


async def test_two_transfers_to_one_account_in_one_transaction(chain: Chain) -> None:
    token, tracker = await start(chain)
    tx = await token.functions.transferMany(
        [ADDR[2], ADDR[0], ADDR[2]], [5 * USDT, 6 * USDT, 7 * USDT]
    ).transact({"from": chain.accounts[0]})
    await chain.mine(FINALITY_LAG)
    deposits = await tracker.sync()
    found = {(k.tx_hash, k.position, d.address, d.amount, d.state) for k, d in deposits.items()}
    tx_hash = AsyncWeb3.to_hex(tx)
    assert found == {
        (tx_hash, 0, ADDR[2], 5 * USDT, D.CONFIRMED),
        (tx_hash, 1, ADDR[0], 6 * USDT, D.CONFIRMED),
        (tx_hash, 2, ADDR[2], 7 * USDT, D.CONFIRMED),
    }


async def test_a_reverted_transaction_is_ignored(chain: Chain) -> None:
    token, tracker = await start(chain)
    tx = await token.functions.transfer(ADDR[0], 5 * USDT).transact(
        {"from": chain.accounts[3], "gas": 200_000}  # holds no tokens: the transfer reverts
    )
    receipt = await chain.w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 0
    await chain.mine(FINALITY_LAG)
    assert await tracker.sync() == {}


async def test_a_reorg_before_finality_orphans_the_deposit(chain: Chain) -> None:
    token, tracker = await start(chain)
    snapshot = await chain.snapshot()
    await transfer(token, chain, ADDR[0], 10 * USDT)
    await tracker.sync()
    assert tracker.only().state is D.DETECTED
    await chain.revert(snapshot)
    await chain.mine(3)  # a longer chain without the transfer
    await tracker.sync()
    assert (tracker.only().state, tracker.only().block_number) == (D.ORPHANED, None)
    await chain.mine(FINALITY_LAG)
    await tracker.sync()
    assert tracker.only().state is D.ORPHANED


async def test_reinclusion_at_another_log_position_is_the_same_deposit(chain: Chain) -> None:
    token, tracker = await start(chain)
    await transfer(token, chain, chain.accounts[1], 100 * USDT)
    snapshot = await chain.snapshot()
    first = await transfer(token, chain, ADDR[0], 10 * USDT)
    raw = await chain.raw_transaction(first["transactionHash"])
    await tracker.sync()
    key = tracker.only().key
    assert first["logs"][0]["logIndex"] == 0

    await chain.revert(snapshot)
    await chain.automine(False)
    await token.functions.transfer(ADDR[1], 2 * USDT).transact(
        {"from": chain.accounts[1], "maxPriorityFeePerGas": 10**10, "maxFeePerGas": 10**11}
    )
    await chain.w3.eth.send_raw_transaction(raw)
    await chain.mine(1)
    await chain.automine(True)
    again = await chain.w3.eth.get_transaction_receipt(first["transactionHash"])
    assert again["logs"][0]["logIndex"] == 1  # the same transaction, now second in its block

    await chain.mine(FINALITY_LAG)
    deposits = await tracker.sync()
    assert deposits[key].state is D.CONFIRMED
    assert deposits[key].block_hash == AsyncWeb3.to_hex(again["blockHash"])
    assert {(d.address, d.state) for d in deposits.values()} == {
        (ADDR[0], D.CONFIRMED),
        (ADDR[1], D.CONFIRMED),
    }


@pytest.mark.slow
async def test_a_500_block_catch_up_runs_in_bounded_batches(chain: Chain) -> None:
    token, tracker = await start(chain)
    start_block = await chain.head() + 1
    await chain.mine(9)
    await transfer(token, chain, ADDR[0], 3 * USDT)
    await chain.mine(390)
    await chain.w3.eth.send_transaction({"from": chain.accounts[2], "to": ADDR[2], "value": 10**17})
    await chain.mine(99)
    head = await chain.head()
    assert head - start_block + 1 >= 500
    deposits = await tracker.sync()
    assert tracker.polls == -(-(head - start_block + 1) // 100)  # ceil: 100 blocks per poll
    assert sorted((d.key.asset, d.state) for d in deposits.values()) == [
        (Asset.ETH, D.CONFIRMED),
        (Asset.USDT, D.CONFIRMED),
    ]
    assert tracker.cursor.blocks[-1].number == head
    assert len(tracker.cursor.blocks) <= 256
