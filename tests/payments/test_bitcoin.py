"""The Bitcoin watcher against an Esplora-shaped server the tests drive."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from aiapi_payments.addresses import BitcoinNetwork, p2wpkh_address, p2wpkh_script
from aiapi_payments.bitcoin import BitcoinWatcher, EsploraBackend
from aiapi_payments.book import observe
from aiapi_payments.keys import parse_extended_public_key
from aiapi_payments.model import Asset, ChainNetwork, Deposit, DepositKey, DepositState
from aiapi_payments.policy import BtcConfirmationPolicy, parse_usd
from aiapi_payments.pricing import RateChoice

from tests.payments.fake_esplora import FakeEsplora
from tests.payments.test_keys import BIP84_ZPUB

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = parse_extended_public_key(BIP84_ZPUB)
KEYS = [ACCOUNT.deposit_key(i) for i in range(2)]
ADDR = [p2wpkh_address(k, BitcoinNetwork.MAINNET) for k in KEYS]
SCRIPTS = {a: p2wpkh_script(k) for a, k in zip(ADDR, KEYS, strict=True)}
OTHER = ("bc1qother", "0014" + "ab" * 20)
POLICY = BtcConfirmationPolicy.parse(2, "1000:3")
RATE = RateChoice(parse_usd("60000"), "test")  # 1 BTC = 60,000 USD


class Tracker:
    """Watcher + book, as the service will wire them, with the records kept in memory."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.watcher = BitcoinWatcher(EsploraBackend(client))
        self.deposits: dict[DepositKey, Deposit] = {}

    async def poll(self) -> dict[DepositKey, Deposit]:
        tracked = [d for d in self.deposits.values() if d.state is not DepositState.REVERSED]
        scan = await self.watcher.poll(SCRIPTS, tracked)
        changed = observe(
            self.deposits,
            seen=scan.seen,
            gone=scan.gone,
            head=scan.head,
            now=NOW,
            rate_at=lambda asset, at: RATE,
            is_final=lambda d, head: POLICY.is_final(d.block_number, head, d.usd_nano),
            minimum_nano=lambda asset: parse_usd("1"),
        )
        self.deposits.update(changed)
        return self.deposits

    def state(self, txid: str, vout: int) -> tuple[DepositState, int]:
        deposit = self.deposits[DepositKey(ChainNetwork.BITCOIN, Asset.BTC, txid, vout)]
        return deposit.state, deposit.confirmations


def out(index: int, sats: int) -> tuple[str, str, int]:
    return ADDR[index], SCRIPTS[ADDR[index]], sats


async def test_confirmations_then_confirmed(
    esplora: FakeEsplora, esplora_client: httpx.AsyncClient
) -> None:
    tracker = Tracker(esplora_client)
    esplora.mine(3)
    txid = esplora.send(out(0, 100_000))  # 0.001 BTC = 60 USD: 2 confirmations
    await tracker.poll()
    assert tracker.state(txid, 0) == (DepositState.DETECTED, 0)
    esplora.mine()
    await tracker.poll()
    assert tracker.state(txid, 0) == (DepositState.DETECTED, 1)
    esplora.mine()
    deposits = await tracker.poll()
    assert tracker.state(txid, 0) == (DepositState.CONFIRMED, 2)
    assert deposits[DepositKey(ChainNetwork.BITCOIN, Asset.BTC, txid, 0)].usd_nano == parse_usd(
        "60"
    )


async def test_a_large_deposit_waits_for_more_confirmations(
    esplora: FakeEsplora, esplora_client: httpx.AsyncClient
) -> None:
    tracker = Tracker(esplora_client)
    txid = esplora.send(out(0, 2_000_000))  # 1,200 USD: the 3-confirmation tier
    esplora.mine(2)
    await tracker.poll()
    assert tracker.state(txid, 0) == (DepositState.DETECTED, 2)
    esplora.mine()
    await tracker.poll()
    assert tracker.state(txid, 0) == (DepositState.CONFIRMED, 3)


async def test_rbf_replacement_orphans_the_replaced_transaction(
    esplora: FakeEsplora, esplora_client: httpx.AsyncClient
) -> None:
    tracker = Tracker(esplora_client)
    first = esplora.send(out(0, 50_000))
    await tracker.poll()
    second = esplora.replace(first, out(0, 49_000))
    esplora.mine(2)
    await tracker.poll()
    assert tracker.state(first, 0)[0] is DepositState.ORPHANED
    assert tracker.state(second, 0) == (DepositState.CONFIRMED, 2)


async def test_reorg_before_confirmation_then_reinclusion(
    esplora: FakeEsplora, esplora_client: httpx.AsyncClient
) -> None:
    tracker = Tracker(esplora_client)
    txid = esplora.send(out(1, 30_000))
    esplora.mine()
    await tracker.poll()
    assert tracker.state(txid, 0) == (DepositState.DETECTED, 1)
    esplora.reorg(1)  # the block is gone, the tx is back in the mempool
    esplora.mine(1, include=[])
    await tracker.poll()
    assert tracker.state(txid, 0) == (DepositState.DETECTED, 0)
    esplora.drop(txid)  # and then it falls out of the mempool
    await tracker.poll()
    assert tracker.state(txid, 0)[0] is DepositState.ORPHANED


async def test_reorg_of_a_confirmed_deposit_reverses_it(
    esplora: FakeEsplora, esplora_client: httpx.AsyncClient
) -> None:
    tracker = Tracker(esplora_client)
    txid = esplora.send(out(0, 30_000))
    esplora.mine(2)
    await tracker.poll()
    assert tracker.state(txid, 0)[0] is DepositState.CONFIRMED
    esplora.reorg(2)
    esplora.drop(txid)
    esplora.mine(3)
    await tracker.poll()
    assert tracker.state(txid, 0)[0] is DepositState.REVERSED


async def test_several_outputs_in_one_transaction(
    esplora: FakeEsplora, esplora_client: httpx.AsyncClient
) -> None:
    tracker = Tracker(esplora_client)
    txid = esplora.send(out(0, 10_000), (OTHER[0], OTHER[1], 5_000), out(1, 20_000), out(0, 1_000))
    esplora.mine(2)
    deposits = await tracker.poll()
    found = {(k.position, d.address, d.amount, d.state) for k, d in deposits.items()}
    assert found == {
        (0, ADDR[0], 10_000, DepositState.CONFIRMED),
        (2, ADDR[1], 20_000, DepositState.CONFIRMED),
        (3, ADDR[0], 1_000, DepositState.BELOW_MINIMUM),  # 0.60 USD
    }
    assert all(k.tx_hash == txid for k in deposits)


async def test_history_beyond_the_first_page_is_read(
    esplora: FakeEsplora, esplora_client: httpx.AsyncClient
) -> None:
    tracker = Tracker(esplora_client)
    txids = []
    for _ in range(30):
        txids.append(esplora.send(out(0, 10_000)))
        esplora.mine()
    deposits = await tracker.poll()
    assert {d.key.tx_hash for d in deposits.values()} == set(txids)
