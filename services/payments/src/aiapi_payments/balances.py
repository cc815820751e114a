"""What the deposit addresses hold now, asked of the chain nodes (I/O).

The service never sees a spend it did not make (it makes none), so the sweep plan asks the
nodes rather than adding up deposits: `eth_getBalance` and the token contracts' `balanceOf`
through `eth_call` on every EVM network and on TRON's Ethereum-compatible JSON-RPC, Esplora's
`/address/:address` for Bitcoin. A network whose node does not answer is reported as
unreachable instead of failing the whole plan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from eth_hash.auto import keccak
from web3 import AsyncWeb3

from aiapi_payments.bitcoin import EsploraBackend
from aiapi_payments.config import EvmChainConfig, PaymentsConfig
from aiapi_payments.model import Asset, ChainNetwork, KeyChain
from aiapi_payments.repository import StoredAddress
from aiapi_payments.sweep import GasBalance, Holding

log = logging.getLogger("aiapi.payments.balances")

BALANCE_OF = keccak(b"balanceOf(address)")[:4].hex()
_PARALLEL = 8
T = TypeVar("T")


@dataclass(frozen=True)
class Balances:
    holdings: list[Holding]
    gas: list[GasBalance]
    unreachable: list[str]


class BalanceReader:
    """Balances of stored deposit addresses, per network, from the nodes the service follows."""

    def __init__(
        self,
        config: PaymentsConfig,
        nodes: Mapping[str, AsyncWeb3[Any]],
        esplora: EsploraBackend | None,
    ) -> None:
        self._config = config
        self._nodes = nodes
        self._esplora = esplora
        self._limit = asyncio.Semaphore(_PARALLEL)

    async def _limited(self, call: Awaitable[T]) -> T:
        async with self._limit:
            return await call

    async def read(
        self,
        funded: Callable[[ChainNetwork], Awaitable[Sequence[StoredAddress]]],
    ) -> Balances:
        """`funded(network)`: the addresses worth asking about on that network."""
        holdings: list[Holding] = []
        gas: list[GasBalance] = []
        unreachable: list[str] = []
        for chain in self._config.evm:
            addresses = await funded(chain.network)
            try:
                found, coins = await self._evm(chain, addresses)
            except Exception as error:  # noqa: BLE001 (any node failure: report it, go on)
                log.warning("balances on %s unavailable (%s)", chain.network, type(error).__name__)
                unreachable.append(chain.network.value)
                continue
            holdings += found
            gas += coins
        if self._config.bitcoin is not None and self._esplora is not None:
            addresses = await funded(ChainNetwork.BITCOIN)
            try:
                holdings += await self._bitcoin(self._esplora, addresses)
            except Exception as error:  # noqa: BLE001
                log.warning("bitcoin balances unavailable (%s)", type(error).__name__)
                unreachable.append(ChainNetwork.BITCOIN.value)
        return Balances(holdings, gas, unreachable)

    async def _evm(
        self, chain: EvmChainConfig, addresses: Sequence[StoredAddress]
    ) -> tuple[list[Holding], list[GasBalance]]:
        w3 = self._nodes[chain.network]

        async def coin(stored: StoredAddress) -> int:
            node_address = AsyncWeb3.to_checksum_address(chain.to_node(stored.address))
            return int(await self._limited(w3.eth.get_balance(node_address)))

        async def token(stored: StoredAddress, contract: str) -> int:
            node_address = chain.to_node(stored.address).lower().removeprefix("0x")
            call = {"to": contract, "data": "0x" + BALANCE_OF + node_address.rjust(64, "0")}
            result = await self._limited(w3.eth.call(cast(Any, call)))
            return int.from_bytes(bytes(result), "big") if result else 0

        coins = await asyncio.gather(*(coin(stored) for stored in addresses))
        holdings: list[Holding] = []
        gas: list[GasBalance] = []
        for stored, balance in zip(addresses, coins, strict=True):
            gas.append(
                GasBalance(
                    chain.network.value,
                    stored.address,
                    stored.index,
                    chain.gas_coin,
                    balance,
                    chain.gas_decimals,
                )
            )
            if chain.native is not None:
                holdings.append(
                    Holding(
                        chain.network.value,
                        chain.keychain,
                        chain.native.value,
                        None,
                        stored.address,
                        stored.index,
                        balance,
                        chain.native.decimals,
                    )
                )
        for spec in chain.tokens:
            amounts = await asyncio.gather(*(token(s, spec.contract) for s in addresses))
            holdings += [
                Holding(
                    chain.network.value,
                    chain.keychain,
                    spec.asset.value,
                    spec.shown,
                    stored.address,
                    stored.index,
                    amount,
                    spec.decimals,
                )
                for stored, amount in zip(addresses, amounts, strict=True)
            ]
        return holdings, gas

    async def _bitcoin(
        self, esplora: EsploraBackend, addresses: Sequence[StoredAddress]
    ) -> list[Holding]:
        sats = await asyncio.gather(
            *(self._limited(esplora.confirmed_balance(s.address)) for s in addresses)
        )
        return [
            Holding(
                ChainNetwork.BITCOIN.value,
                KeyChain.BITCOIN,
                Asset.BTC.value,
                None,
                stored.address,
                stored.index,
                amount,
                Asset.BTC.decimals,
            )
            for stored, amount in zip(addresses, sats, strict=True)
        ]
