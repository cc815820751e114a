"""CPU per chunk of what the edge does to a stream besides moving its bytes: the SSE reader, the
usage meter and the hold guard, for the commonest chunk (one text delta, as a long stream sends
them 20 ms apart). Usage::

    .venv/bin/python bench/stream_metering.py [--chunks 200000]
    PYTHONPATH=<other tree>/services/edge/src .venv/bin/python bench/stream_metering.py  # compare

CPU time (``time.process_time``), not wall time: on a shared machine it is the stable figure.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from aiapi_edge.budget import HoldBudget
from aiapi_edge.extension import HoldGuard
from aiapi_edge.metering import UsageMeter
from aiapi_edge.sse import SseReader
from aiapi_shared.catalogue import default_catalogue

START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
    b'{"input_tokens":12,"output_tokens":1}}}\n\n'
)
DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"tok "}}\n\n'
)


def reader() -> SseReader:
    """The reader as the Anthropic route makes it (only the events it reads), where it can."""
    try:
        from aiapi_edge.extension import GUARDED_EVENTS
        from aiapi_edge.metering import METERED_EVENTS
    except ImportError:  # a tree before the filtering reader
        return SseReader()
    return SseReader(METERED_EVENTS | GUARDED_EVENTS)


async def main(chunks: int) -> None:
    catalogue = default_catalogue()
    model = catalogue.model("claude-haiku-4-5")
    price = model.price_at(datetime.now(UTC)) if model is not None else None
    assert price is not None
    meter = UsageMeter()

    async def refuse(tokens: int) -> int | None:
        return None

    budget = HoldBudget(
        held=10**12,
        price=price,
        discount_bps=0,
        multipliers=catalogue.cache_multipliers_bps,
        max_tokens=64,
    )
    guard = HoldGuard(refuse, budget, meter, hold_id="bench")
    sse = reader()
    for name, data in sse.feed(START):
        meter.event(name, data)
    started = time.process_time()
    for _ in range(chunks):  # what Inference._stream does with each chunk, bytes aside
        events = sse.feed(DELTA)
        for name, data in events:
            guard.observe(name, data)
        for name, data in events:
            meter.event(name, data)
        guard.must_end()
    spent = time.process_time() - started
    print(f"{spent / chunks * 1e6:.2f} µs of CPU per one-delta chunk ({chunks:,} chunks)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().chunks))
