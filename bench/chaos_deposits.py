"""Deposits during the fault run (bench/chaos.py with the ``kill_payments_crediting`` fault):
USDT transfers on anvil to the customers' deposit addresses while payments follows the chain,
and the verdict on them: every deposit credited exactly once, to its account, at its value.

The token is the tests' Vyper ERC-20 (``aiapi_testkit.chain``), deployed on a fresh anvil before
payments starts (its contract address is payments' ``AIAPI_USDT_CONTRACT``); payments watches
the test wallet's deposit addresses (the published "abandon ... about" mnemonic's Ethereum
account). Each transfer is mined at once (anvil's automine), then the finality lag, so that
payments confirms it, publishes the credit, and billing credits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

from aiapi_shared.bus import Bus
from aiapi_shared.payments_api import ADDRESSES_SUBJECT, AccountQuery, AddressesReply
from aiapi_testkit.anvil import FINALITY_LAG
from aiapi_testkit.books import DepositCredit, DepositRow
from aiapi_testkit.chain import Chain, token_artifacts
from aiapi_testkit.stack import LocalStack
from web3 import AsyncHTTPProvider, AsyncWeb3

# The test wallet's Ethereum account (m/44'/60'/0' of the "abandon ... about" mnemonic): its
# extended public key and the address at index 0 (payments checks the one against the other).
ETH_XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si"
    "3yZdUsT8ddYM3PwnATt"
)
ETH_ADDRESS_0 = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
NANO_PER_UNIT = 1_000  # USDT has 6 decimals; at the peg one unit is 1,000 nano-USD
UNITS = (100 * 10_000, 2_000 * 10_000)  # 1.00 to 20.00 USDT: above payments' 1.00 minimum


async def deploy_token(rpc_url: str) -> tuple[str, int]:
    """The USDT contract on ``rpc_url``, and the block payments starts following from."""
    chain = Chain(AsyncWeb3(AsyncHTTPProvider(rpc_url)))
    try:
        await chain.setup()
        token = await chain.deploy_token()
        return str(token.address), await chain.head() + 1
    finally:
        await chain.w3.provider.disconnect()


def payments_env(rpc_url: str, token_address: str, start_block: int) -> dict[str, str]:
    """Payments following anvil's chain (31337), polling often, at the peg (no price source)."""
    return {
        "AIAPI_ETH_RPC_URL": rpc_url,
        "AIAPI_ETH_CHAIN_ID": "31337",
        "AIAPI_ETH_XPUB": ETH_XPUB,
        "AIAPI_ETH_ADDRESS_0": ETH_ADDRESS_0,
        "AIAPI_ETH_START_BLOCK": str(start_block),
        "AIAPI_USDT_CONTRACT": token_address,
        "AIAPI_ETH_POLL_INTERVAL_S": "0.2",
        "AIAPI_OUTBOX_INTERVAL_S": "0.2",
        "AIAPI_PRICE_SOURCES": "",
    }


@dataclass(frozen=True)
class SentDeposit:
    tx_hash: str  # 0x…, lower case
    account_id: str
    units: int


@dataclass
class Depositor:
    """Sends USDT to the customers' deposit addresses; remembers every transfer it made."""

    chain: Chain
    token: Any
    addresses: dict[str, str]  # account id -> its USDT deposit address
    rng: random.Random
    sent: list[SentDeposit] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def open(
        cls, rpc_url: str, token_address: str, stack: LocalStack, accounts: list[str], seed: int
    ) -> Depositor:
        chain = Chain(AsyncWeb3(AsyncHTTPProvider(rpc_url)))
        await chain.setup()
        abi, _ = token_artifacts()
        token = chain.w3.eth.contract(address=AsyncWeb3.to_checksum_address(token_address), abi=abi)
        addresses = await usdt_addresses(stack, accounts)
        return cls(chain, token, addresses, random.Random(f"{seed}:deposits"))

    async def send(self, count: int = 1) -> None:
        """``count`` transfers to random customers, then the blocks that make them final."""
        async with self.lock:
            for _ in range(count):
                account = self.rng.choice(sorted(self.addresses))
                units = self.rng.randint(*UNITS) // 10_000 * 10_000
                tx_hash = await self.chain.pay(self.token, self.addresses[account], units)
                self.sent.append(SentDeposit(tx_hash.lower(), account, units))
            await self.chain.mine(FINALITY_LAG)

    async def keep_sending(self, every_s: float, stop: asyncio.Event) -> None:
        """One deposit every ``every_s`` on average until ``stop`` (anvil is never faulted)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.expovariate(1 / every_s))
            if not stop.is_set():
                await self.send()

    async def close(self) -> None:
        await self.chain.w3.provider.disconnect()


async def usdt_addresses(stack: LocalStack, accounts: list[str]) -> dict[str, str]:
    """Each account's USDT address on Ethereum, asked of payments as accounts asks it."""
    bus = await Bus.connect(stack.nats.url, name="chaos-deposits", options=stack.admin_options())
    try:
        found = {}
        for account_id in accounts:
            reply = await bus.call(
                ADDRESSES_SUBJECT, AccountQuery(account_id=account_id), AddressesReply, timeout_s=10
            )
            found[account_id] = next(
                a.address for a in reply.addresses if a.asset == "USDT" and a.network == "ethereum"
            )
        return found
    finally:
        await bus.close()


@dataclass
class DepositVerdict:
    sent: int = 0
    credited: int = 0
    lost: list[str] = field(default_factory=list)  # sent, never credited
    double: list[str] = field(default_factory=list)  # credited twice, or never sent
    wrong: list[str] = field(default_factory=list)  # another amount or account than sent
    unfinished: list[str] = field(default_factory=list)  # credited; payments does not say so

    @property
    def ok(self) -> bool:
        return not (self.lost or self.double or self.wrong or self.unfinished)

    def problems(self) -> list[tuple[str, list[str]]]:
        return [
            ("deposits lost", self.lost),
            ("deposits double", self.double),
            ("deposits wrong", self.wrong),
            ("deposits unfinished", self.unfinished),
        ]


def judge_deposits(
    sent: list[SentDeposit], tracked: list[DepositRow], credits: list[DepositCredit]
) -> DepositVerdict:
    verdict = DepositVerdict(sent=len(sent))
    by_tx: dict[str, list[DepositRow]] = {}
    for row in tracked:
        by_tx.setdefault(row.tx_hash.lower(), []).append(row)
    by_deposit: dict[str, list[DepositCredit]] = {}
    for credit in credits:
        by_deposit.setdefault(credit.deposit_id, []).append(credit)
    ours: set[str] = set()
    for deposit in sent:
        rows = by_tx.get(deposit.tx_hash, [])
        if len(rows) != 1:  # one transfer, one log: exactly one deposit
            verdict.lost.append(f"{deposit.tx_hash}: {len(rows)} deposits seen by payments")
            continue
        row = rows[0]
        ours.add(row.deposit_id)
        got = by_deposit.get(row.deposit_id, [])
        if not got:
            verdict.lost.append(f"{row.deposit_id} ({row.state})")
            continue
        if len(got) > 1:
            verdict.double.append(f"{row.deposit_id}: credited {len(got)} times")
        want = deposit.units * NANO_PER_UNIT
        if got[0].amount != want or got[0].account_id != deposit.account_id:
            verdict.wrong.append(
                f"{row.deposit_id}: {got[0].amount} to {got[0].account_id},"
                f" sent {want} to {deposit.account_id}"
            )
        if row.state != "credited":
            verdict.unfinished.append(f"{row.deposit_id}: payments says {row.state}")
        verdict.credited += 1
    for deposit_id in by_deposit.keys() - ours:
        verdict.double.append(f"credited, never sent: {deposit_id}")
    return verdict
