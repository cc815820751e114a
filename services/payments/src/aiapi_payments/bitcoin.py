"""Follow Bitcoin deposits (I/O) through a narrow backend; Esplora's HTTP API is the one built in.

The watcher asks, per poll, for the transactions of each deposit address (outputs are matched by
script, one deposit per matching output: position = output index) and re-checks the deposits it
was told to track that the listing no longer shows:
- a transaction the backend no longer knows was replaced (RBF) or dropped: gone;
- a transaction whose block hash is not the best chain's block at that height was reorganised
  out: it is back in the mempool (confirmations 0) or in another block, as its status says.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from aiapi_payments.model import Asset, ChainNetwork, Deposit, DepositKey, Transfer

_ESPLORA_CHAIN_PAGE = 25  # confirmed transactions per page of /address/:addr/txs


@dataclass(frozen=True)
class TxStatus:
    confirmed: bool
    block_height: int | None = None
    block_hash: str | None = None


@dataclass(frozen=True)
class TxOutput:
    index: int
    script: str  # hex scriptPubKey
    value: int  # sats


@dataclass(frozen=True)
class BitcoinTransaction:
    txid: str
    outputs: tuple[TxOutput, ...]
    status: TxStatus


class BitcoinBackend(Protocol):
    async def tip_height(self) -> int: ...

    async def block_hash(self, height: int) -> str | None: ...

    async def address_transactions(
        self, address: str, *, since_height: int
    ) -> list[BitcoinTransaction]:
        """Mempool transactions and those confirmed at `since_height` or above (at least)."""
        ...

    async def transaction_status(self, txid: str) -> TxStatus | None:
        """None when the backend does not know the transaction (replaced or dropped)."""
        ...


class BackendError(RuntimeError):
    pass


def _status(document: Mapping[str, Any]) -> TxStatus:
    if not document.get("confirmed"):
        return TxStatus(confirmed=False)
    return TxStatus(True, int(document["block_height"]), str(document["block_hash"]))


def _transaction(document: Mapping[str, Any]) -> BitcoinTransaction:
    outputs = tuple(
        TxOutput(index, str(vout["scriptpubkey"]).lower(), int(vout["value"]))
        for index, vout in enumerate(document["vout"])
    )
    return BitcoinTransaction(str(document["txid"]), outputs, _status(document["status"]))


class EsploraBackend:
    """Esplora's REST API (self-hosted Esplora, mempool.space, Blockstream's)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client  # base_url = the Esplora API root, e.g. https://host/api

    async def _get(self, path: str) -> httpx.Response | None:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as error:
            raise BackendError(f"Esplora request {path} failed: {error}") from error
        if response.status_code in (400, 404):
            return None
        if response.status_code != 200:
            raise BackendError(f"Esplora answered {response.status_code} to {path}")
        return response

    async def confirmed_balance(self, address: str) -> int:
        """Sats the address holds in confirmed outputs (`/address/:address` chain stats)."""
        response = await self._get(f"/address/{address}")
        if response is None:
            return 0
        stats = response.json()["chain_stats"]
        return int(stats["funded_txo_sum"]) - int(stats["spent_txo_sum"])

    async def tip_height(self) -> int:
        response = await self._get("/blocks/tip/height")
        if response is None:
            raise BackendError("Esplora has no tip")
        return int(response.text)

    async def block_hash(self, height: int) -> str | None:
        response = await self._get(f"/block-height/{height}")
        return None if response is None else response.text.strip()

    async def address_transactions(
        self, address: str, *, since_height: int
    ) -> list[BitcoinTransaction]:
        response = await self._get(f"/address/{address}/txs")
        page = [] if response is None else [_transaction(d) for d in response.json()]
        found = list(page)
        confirmed = [tx for tx in page if tx.status.confirmed]
        # Newest first: page on while a full page of confirmed ones is still above since_height.
        while len(confirmed) >= _ESPLORA_CHAIN_PAGE and (
            (confirmed[-1].status.block_height or 0) >= since_height
        ):
            response = await self._get(f"/address/{address}/txs/chain/{confirmed[-1].txid}")
            confirmed = [] if response is None else [_transaction(d) for d in response.json()]
            found.extend(confirmed)
        return found

    async def transaction_status(self, txid: str) -> TxStatus | None:
        response = await self._get(f"/tx/{txid}/status")
        return None if response is None else _status(response.json())


@dataclass(frozen=True)
class BitcoinScan:
    head: int
    seen: list[Transfer]
    gone: set[DepositKey]


class BitcoinWatcher:
    def __init__(self, backend: BitcoinBackend, *, lookback_blocks: int = 144) -> None:
        self._backend = backend
        self._lookback = lookback_blocks

    async def poll(self, scripts: Mapping[str, str], tracked: Collection[Deposit]) -> BitcoinScan:
        """`scripts`: deposit address -> its output script (hex); `tracked`: deposits not yet
        settled deep enough, re-checked one by one when the address listing does not show them
        (older than the lookback, replaced, or reorganised)."""
        head = await self._backend.tip_height()
        best: dict[int, str | None] = {}

        async def on_best_chain(status: TxStatus) -> bool:
            assert status.block_height is not None
            if status.block_height not in best:
                best[status.block_height] = await self._backend.block_hash(status.block_height)
            return best[status.block_height] == status.block_hash

        seen: dict[DepositKey, Transfer] = {}
        for address, script in scripts.items():
            since = max(head - self._lookback, 0)
            for tx in await self._backend.address_transactions(address, since_height=since):
                status = tx.status
                if status.confirmed and not await on_best_chain(status):
                    continue  # a stale view of a reorganised block: re-checked below
                for output in tx.outputs:
                    if output.script != script.lower() or output.value <= 0:
                        continue
                    key = DepositKey(ChainNetwork.BITCOIN, Asset.BTC, tx.txid, output.index)
                    seen[key] = Transfer(
                        key, address, output.value, status.block_height, status.block_hash
                    )
        gone: set[DepositKey] = set()
        for deposit in tracked:
            if deposit.key in seen:
                continue
            now = await self._backend.transaction_status(deposit.key.tx_hash)
            if now is None or (now.confirmed and not await on_best_chain(now)):
                gone.add(deposit.key)
                continue
            seen[deposit.key] = Transfer(
                deposit.key, deposit.address, deposit.amount, now.block_height, now.block_hash
            )
        return BitcoinScan(head, list(seen.values()), gone)


# The block at height 0 of each network the addresses' prefix allows (testnet: tb1 is shared
# by testnet3, testnet4 and signet).
GENESIS_HASHES: dict[str, frozenset[str]] = {
    "mainnet": frozenset({"000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"}),
    "testnet": frozenset(
        {
            "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
            "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
            "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
        }
    ),
    "regtest": frozenset({"0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"}),
}


class WrongNetwork(RuntimeError):
    """The backend serves another Bitcoin network than configured."""


async def check_genesis(backend: BitcoinBackend, network: str) -> None:
    genesis = await backend.block_hash(0)
    if genesis is None or genesis.lower() not in GENESIS_HASHES[network]:
        raise WrongNetwork(
            f"the Esplora backend's genesis block {genesis} is not {network}'s "
            "(check AIAPI_BTC_ESPLORA_URL and AIAPI_BTC_NETWORK)"
        )
