"""An Esplora-shaped HTTP server the Bitcoin tests drive: blocks, mempool, RBF and reorgs.

Only the routes the backend uses exist, with Esplora's shapes: newest first, mempool before
chain, 25 confirmed transactions per page, 404 for an unknown transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from aiapi_cli.ports import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

PAGE = 25
# Bitcoin regtest's genesis block: the service checks the backend's block 0 at start.
REGTEST_GENESIS = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"


@dataclass
class FakeTx:
    txid: str
    outputs: list[tuple[str, str, int]]  # (address, script hex, sats)
    height: int | None = None  # None: mempool

    def document(self, chain: FakeEsplora) -> dict[str, Any]:
        if self.height is None:
            status: dict[str, Any] = {"confirmed": False}
        else:
            status = {
                "confirmed": True,
                "block_height": self.height,
                "block_hash": chain.blocks[self.height],
                "block_time": 1_700_000_000 + self.height * 600,
            }
        vout = [
            {
                "scriptpubkey": s,
                "scriptpubkey_address": a,
                "scriptpubkey_type": "v0_p2wpkh",
                "value": v,
            }
            for a, s, v in self.outputs
        ]
        return {
            "txid": self.txid,
            "version": 2,
            "locktime": 0,
            "vin": [],
            "vout": vout,
            "status": status,
        }


@dataclass
class FakeEsplora:
    blocks: list[str] = field(default_factory=lambda: [REGTEST_GENESIS])
    txs: dict[str, FakeTx] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def tip(self) -> int:
        return len(self.blocks) - 1

    def send(self, *outputs: tuple[str, str, int]) -> str:
        txid = _block_hash(f"tx{next(self._counter)}")
        self.txs[txid] = FakeTx(txid, list(outputs))
        return txid

    def mine(self, count: int = 1, *, include: list[str] | None = None) -> None:
        """Mine `count` blocks; the first takes the mempool (or only `include`)."""
        for i in range(count):
            self.blocks.append(_block_hash(f"block{next(self._counter)}"))
            if i == 0:
                for tx in self.txs.values():
                    if tx.height is None and (include is None or tx.txid in include):
                        tx.height = self.tip

    def replace(self, txid: str, *outputs: tuple[str, str, int]) -> str:
        """RBF: a mempool transaction gives way to one spending the same inputs."""
        assert self.txs[txid].height is None
        del self.txs[txid]
        return self.send(*outputs)

    def reorg(self, depth: int) -> None:
        """Drop the last `depth` blocks; their transactions return to the mempool."""
        cut = self.tip - depth + 1
        del self.blocks[cut:]
        for tx in self.txs.values():
            if tx.height is not None and tx.height >= cut:
                tx.height = None

    def drop(self, txid: str) -> None:
        del self.txs[txid]

    def app(self) -> Starlette:
        def text(value: object) -> Response:
            return PlainTextResponse(str(value))

        async def tip_height(_: Request) -> Response:
            return text(self.tip)

        async def tip_hash(_: Request) -> Response:
            return text(self.blocks[-1])

        async def block_height(request: Request) -> Response:
            height = int(request.path_params["height"])
            if height > self.tip:
                return PlainTextResponse("Block not found", status_code=404)
            return text(self.blocks[height])

        def history(address: str) -> tuple[list[FakeTx], list[FakeTx]]:
            mine = [t for t in self.txs.values() if any(o[0] == address for o in t.outputs)]
            mempool = [t for t in mine if t.height is None]
            chain = sorted(
                (t for t in mine if t.height is not None), key=lambda t: t.height or 0, reverse=True
            )
            return mempool, chain

        async def address_txs(request: Request) -> Response:
            mempool, chain = history(request.path_params["address"])
            page = mempool[:50] + chain[:PAGE]
            return JSONResponse([t.document(self) for t in page])

        async def address_chain(request: Request) -> Response:
            _, chain = history(request.path_params["address"])
            ids = [t.txid for t in chain]
            after = request.path_params["last"]
            start = ids.index(after) + 1 if after in ids else len(ids)
            return JSONResponse([t.document(self) for t in chain[start : start + PAGE]])

        async def address_stats(request: Request) -> Response:
            _, chain = history(request.path_params["address"])
            funded = sum(
                value
                for tx in chain
                for address, _, value in tx.outputs
                if address == request.path_params["address"]
            )
            # The fake's outputs are never spent: what was paid to the address is still there.
            stats = {"funded_txo_sum": funded, "spent_txo_sum": 0}
            return JSONResponse({"address": request.path_params["address"], "chain_stats": stats})

        async def tx_status(request: Request) -> Response:
            tx = self.txs.get(request.path_params["txid"])
            if tx is None:
                return PlainTextResponse("Transaction not found", status_code=404)
            return JSONResponse(tx.document(self)["status"])

        return Starlette(
            routes=[
                Route("/blocks/tip/height", tip_height),
                Route("/blocks/tip/hash", tip_hash),
                Route("/block-height/{height:int}", block_height),
                Route("/address/{address}", address_stats),
                Route("/address/{address}/txs", address_txs),
                Route("/address/{address}/txs/chain/{last}", address_chain),
                Route("/tx/{txid}/status", tx_status),
            ]
        )


def _block_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app on a free loopback port for the duration of the block."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
