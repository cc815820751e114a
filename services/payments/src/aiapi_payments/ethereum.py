"""Follow an EVM-style chain for deposits (I/O: JSON-RPC through web3's AsyncWeb3): Ethereum,
the EVM networks of AIAPI_EVM_CHAINS, and TRON through its node's Ethereum-compatible JSON-RPC.

Async rather than sync-in-a-thread: the service is an asyncio program (starlette, NATS), the
watcher spends its time waiting on the node, and AsyncWeb3 keeps one pooled HTTP session
without a thread pool to size or shut down.

Each `poll()`:
1. checks that the newest processed block is still canonical; if not, walks back through the
   remembered blocks to the fork point and reports the dropped blocks (`removed`);
2. scans at most `batch_size` blocks after the cursor: headers are chained by parent hash,
   `Transfer` logs of the configured token contracts (and no other: a lookalike token with the
   same symbol never matches) to watched addresses come from one `eth_getLogs`, the native
   coin (where it credits) from the blocks' transactions; a transfer counts only from a
   successful transaction. Full blocks are read only when the native coin credits;
3. saves the cursor (the processed blocks still within `keep_blocks`) and reports head and the
   `finalized` block. A caller catches up after downtime by polling until `caught_up`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from eth_hash.auto import keccak
from eth_typing import HexStr
from web3 import AsyncWeb3

from aiapi_payments.addresses import to_checksum_address
from aiapi_payments.model import Asset, ChainNetwork, DepositKey, Transfer

TRANSFER_TOPIC = "0x" + keccak(b"Transfer(address,address,uint256)").hex()
_MAX_PARALLEL_REQUESTS = 16


class ChainMismatch(RuntimeError):
    """The node serves another chain than configured."""


class DeepReorg(RuntimeError):
    """A reorganisation reached below every remembered block: an operator must look."""


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str


class CursorStore(Protocol):
    """Where the watcher remembers the blocks it processed (ascending, contiguous)."""

    async def load(self) -> list[BlockRef]: ...

    async def save(self, blocks: Sequence[BlockRef]) -> None: ...


@dataclass
class MemoryCursorStore:
    blocks: list[BlockRef] = field(default_factory=list)

    async def load(self) -> list[BlockRef]:
        return list(self.blocks)

    async def save(self, blocks: Sequence[BlockRef]) -> None:
        self.blocks = list(blocks)


@dataclass(frozen=True)
class EthereumScan:
    head: int
    finalized: int | None
    transfers: list[Transfer]  # found in blocks processed by this poll
    removed: list[BlockRef]  # blocks a reorg dropped; their transfers are gone unless re-found
    caught_up: bool


def _hex(value: Any) -> str:
    """Hashes as lowercase 0x-hex, whatever web3 returned (HexBytes or str)."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def _topic_address(topic: Any) -> str:
    return to_checksum_address(_hex(topic)[-40:])


def _topic_for(address: str) -> str:
    return "0x" + address.lower().removeprefix("0x").rjust(64, "0")


async def check_chain_id(
    w3: AsyncWeb3[Any], expected: int, setting: str = "AIAPI_ETH_CHAIN_ID"
) -> None:
    actual = await w3.eth.chain_id
    if actual != expected:
        raise ChainMismatch(f"the node reports chain id {actual}, {setting} is {expected}")


class EthereumWatcher:
    """`tokens` maps each crediting contract to its asset (and decimals); `native` is the
    network's own coin when it credits (ETH on Ethereum), else None."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        *,
        tokens: Mapping[str, Asset | tuple[Asset, int]],
        cursor: CursorStore,
        network: ChainNetwork = ChainNetwork.ETHEREUM,
        native: Asset | None = Asset.ETH,
        start_block: int | None = None,
        batch_size: int = 100,
        keep_blocks: int = 256,
        read_finalized: bool = True,
    ) -> None:
        self._w3 = w3
        self._tokens: dict[str, tuple[Asset, int]] = {}
        for contract, token in tokens.items():
            asset, decimals = token if isinstance(token, tuple) else (token, token.decimals)
            self._tokens[to_checksum_address(contract).lower()] = (asset, decimals)
        self._network = network
        self._native = native
        self._cursor = cursor
        self._start_block = start_block
        self._batch_size = batch_size
        self._keep_blocks = keep_blocks
        self._read_finalized = read_finalized
        self._limit = asyncio.Semaphore(_MAX_PARALLEL_REQUESTS)

    async def poll(self, addresses: Collection[str]) -> EthereumScan:
        watched = {address.lower() for address in addresses}
        head = int(await self._w3.eth.block_number)
        finalized: int | None = None
        if self._read_finalized:
            finalized = int((await self._w3.eth.get_block("finalized"))["number"])
        blocks = await self._cursor.load()
        if not blocks:
            start = head if self._start_block is None else self._start_block
            blocks = await self._rewound_start(start)
        blocks, removed = await self._rewind_to_canonical(blocks)
        first = blocks[-1].number + 1
        last = min(head, first + self._batch_size - 1)
        transfers: list[Transfer] = []
        if first <= last:
            scanned = await self._scan(first, last, blocks[-1], watched)
            if scanned is None:  # the chain moved under the batch: retry on the next poll
                await self._cursor.save(blocks)
                return EthereumScan(head, finalized, [], removed, caught_up=False)
            new_blocks, transfers = scanned
            blocks = blocks + new_blocks
        blocks = blocks[-self._keep_blocks :]
        await self._cursor.save(blocks)
        return EthereumScan(head, finalized, transfers, removed, caught_up=last >= head)

    async def _rewound_start(self, start: int) -> list[BlockRef]:
        """The cursor starts at the block before `start`, so `start` itself is scanned."""
        anchor = max(start - 1, 0)
        block = await self._w3.eth.get_block(anchor)
        return [BlockRef(anchor, _hex(block["hash"]))]

    async def _rewind_to_canonical(
        self, blocks: list[BlockRef]
    ) -> tuple[list[BlockRef], list[BlockRef]]:
        removed: list[BlockRef] = []
        while blocks:
            tip = blocks[-1]
            canonical = await self._w3.eth.get_block(tip.number)
            if _hex(canonical["hash"]) == tip.hash:
                return blocks, list(reversed(removed))
            removed.append(blocks.pop())
        raise DeepReorg(
            f"a reorganisation reached below block {removed[-1].number}, the oldest remembered"
        )

    async def _scan(
        self, first: int, last: int, parent: BlockRef, watched: set[str]
    ) -> tuple[list[BlockRef], list[Transfer]] | None:
        full = self._native is not None
        headers = await self._gather(
            self._w3.eth.get_block(n, full_transactions=full) for n in range(first, last + 1)
        )
        refs: list[BlockRef] = []
        for header in headers:
            expected_parent = refs[-1].hash if refs else parent.hash
            if _hex(header["parentHash"]) != expected_parent:
                return None
            refs.append(BlockRef(int(header["number"]), _hex(header["hash"])))
        hashes = {ref.hash for ref in refs}
        if not watched:
            return refs, []
        logs: list[Any] = []
        if self._tokens:
            log_filter = {
                "fromBlock": first,
                "toBlock": last,
                "address": [to_checksum_address(c) for c in sorted(self._tokens)],
                "topics": [TRANSFER_TOPIC, None, [_topic_for(a) for a in sorted(watched)]],
            }
            logs = list(await self._w3.eth.get_logs(cast(Any, log_filter)))
        if any(_hex(log["blockHash"]) not in hashes for log in logs):
            return None
        token_transfers = await self._token_transfers(logs, watched, hashes)
        native_transfers = (
            await self._native_transfers(headers, watched, self._native) if self._native else []
        )
        if token_transfers is None or native_transfers is None:
            return None
        transfers = sorted(
            token_transfers + native_transfers,
            key=lambda t: (t.block_number or 0, t.key.tx_hash, t.key.asset, t.key.position),
        )
        return refs, transfers

    async def _token_transfers(
        self, logs: Sequence[Any], watched: set[str], hashes: set[str]
    ) -> list[Transfer] | None:
        tx_hashes = sorted({_hex(log["transactionHash"]) for log in logs})
        receipts = await self._gather(
            self._w3.eth.get_transaction_receipt(HexStr(tx_hash)) for tx_hash in tx_hashes
        )
        transfers: list[Transfer] = []
        for receipt in receipts:
            block_hash = _hex(receipt["blockHash"])
            if block_hash not in hashes:
                return None
            if int(receipt["status"]) != 1:
                continue
            ordinals: dict[str, int] = {}  # per contract: the position inside the transaction
            for log in receipt["logs"]:
                topics = [_hex(t) for t in log["topics"]]
                contract = str(log["address"]).lower()
                if contract not in self._tokens or topics[:1] != [TRANSFER_TOPIC]:
                    continue
                position = ordinals.get(contract, 0)
                ordinals[contract] = position + 1
                if len(topics) != 3:
                    continue
                recipient = _topic_address(topics[2])
                amount = int(_hex(log["data"]), 16) if _hex(log["data"]) != "0x" else 0
                if recipient.lower() not in watched or amount == 0:
                    continue
                asset, decimals = self._tokens[contract]
                transfers.append(
                    Transfer(
                        DepositKey(
                            self._network, asset, _hex(receipt["transactionHash"]), position
                        ),
                        recipient,
                        amount,
                        int(receipt["blockNumber"]),
                        block_hash,
                        decimals,
                    )
                )
        return transfers

    async def _native_transfers(
        self, headers: Sequence[Any], watched: set[str], native: Asset
    ) -> list[Transfer] | None:
        candidates = [
            (header, tx)
            for header in headers
            for tx in header["transactions"]
            if tx.get("to") and tx["to"].lower() in watched and int(tx["value"]) > 0
        ]
        receipts = await self._gather(
            self._w3.eth.get_transaction_receipt(tx["hash"]) for _, tx in candidates
        )
        transfers: list[Transfer] = []
        for (header, tx), receipt in zip(candidates, receipts, strict=True):
            if _hex(receipt["blockHash"]) != _hex(header["hash"]):
                return None
            if int(receipt["status"]) != 1:
                continue
            transfers.append(
                Transfer(
                    DepositKey(self._network, native, _hex(tx["hash"]), 0),
                    to_checksum_address(tx["to"]),
                    int(tx["value"]),
                    int(header["number"]),
                    _hex(header["hash"]),
                )
            )
        return transfers

    async def _gather(self, calls: Any) -> list[Any]:
        async def limited(call: Any) -> Any:
            async with self._limit:
                return await call

        return list(await asyncio.gather(*(limited(call) for call in calls)))
