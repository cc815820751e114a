"""Drive anvil from the tests and the fault run: deploy the Vyper token, send transfers, mine,
reorganise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import vyper
from web3 import AsyncHTTPProvider, AsyncWeb3

TOKEN_SOURCE = Path(__file__).parent / "contracts" / "Token.vy"


@cache
def token_artifacts() -> tuple[list[dict[str, Any]], str]:
    out = vyper.compile_code(TOKEN_SOURCE.read_text(), output_formats=["abi", "bytecode"])
    return out["abi"], out["bytecode"]


class Chain:
    """A thin test driver over an anvil node."""

    def __init__(self, w3: AsyncWeb3[Any]) -> None:
        self.w3 = w3
        self.accounts: list[str] = []

    async def setup(self) -> None:
        self.accounts = list(await self.w3.eth.accounts)

    async def rpc(self, method: str, *params: Any) -> Any:
        response = await self.w3.provider.make_request(method, list(params))
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    async def deploy_token(self, symbol: str = "USDT", supply: int = 10**15) -> Any:
        abi, bytecode = token_artifacts()
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        tx = await factory.constructor(symbol, supply).transact({"from": self.accounts[0]})
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    async def pay(self, token: Any, to: str, amount: int) -> str:
        """A token transfer from the first account, mined; its transaction hash (0x hex)."""
        tx = await token.functions.transfer(to, amount).transact({"from": self.accounts[0]})
        await self.w3.eth.wait_for_transaction_receipt(tx)
        return AsyncWeb3.to_hex(tx)

    async def mine(self, blocks: int = 1) -> None:
        await self.rpc("anvil_mine", hex(blocks))

    async def head(self) -> int:
        return int(await self.w3.eth.block_number)

    async def snapshot(self) -> str:
        return str(await self.rpc("evm_snapshot"))

    async def revert(self, snapshot: str) -> None:
        assert await self.rpc("evm_revert", snapshot) is True

    async def automine(self, on: bool) -> None:
        await self.rpc("evm_setAutomine", on)

    async def raw_transaction(self, tx_hash: Any) -> str:
        return str(await self.rpc("eth_getRawTransactionByHash", AsyncWeb3.to_hex(tx_hash)))


@asynccontextmanager
async def drivers(urls: Mapping[int, str]) -> AsyncIterator[dict[int, Chain]]:
    """A driver per node (by chain id), set up, disconnected after."""
    chains = {chain_id: Chain(AsyncWeb3(AsyncHTTPProvider(url))) for chain_id, url in urls.items()}
    try:
        for chain in chains.values():
            await chain.setup()
        yield chains
    finally:
        for chain in chains.values():
            await chain.w3.provider.disconnect()
