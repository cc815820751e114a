"""A client that reads a stream slower than the upstream writes it stops the edge's reading of
the upstream: the edge holds a bounded amount of the stream, whatever the upstream would send,
and reads on once the client catches up (the stream then ends whole)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiapi_shared.bus import Bus

from .raw_http import read_request
from .support import Billing, EdgeThread, edge_settings, key_record, make_key, put_key
from .test_stream_chunks import END, START

PAD = b": " + b"p" * (64 * 1024) + b"\n\n"  # a comment: passed on, neither metered nor parsed
SUPPLY = 160 * 1024 * 1024  # what the upstream would send to a client that never reads
BOUND = 64 * 1024 * 1024  # the socket buffers on the way, with room to spare


@dataclass
class Upstream:
    url: str = ""
    written: int = 0  # body bytes the upstream got past its own flow control
    finish: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """Answers a POST with a stream of comments until told to finish (or :data:`SUPPLY` is
    sent), then the stream's end."""
    state = Upstream()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        for piece in itertools.chain([START], itertools.repeat(PAD)):
            if state.finish.is_set() or state.written >= SUPPLY:
                break
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            state.written += len(piece)
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(END), END))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state


async def stalled(upstream: Upstream, quiet_s: float = 2.0, timeout_s: float = 120.0) -> int:
    """What the upstream had written once it could write nothing more for ``quiet_s``."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    last, since = upstream.written, loop.time()
    while loop.time() < give_up and upstream.written < SUPPLY:
        await asyncio.sleep(0.1)
        if upstream.written != last:
            last, since = upstream.written, loop.time()
        elif loop.time() - since >= quiet_s:
            return last
    return upstream.written


async def test_a_client_that_stops_reading_stops_the_upstream_reading(
    bus: Bus, nats_url: str, billing: Billing, upstream: Upstream, tmp_path: Path
) -> None:
    key = make_key()
    await put_key(bus, key, key_record("acct_backpressure"))
    settings = edge_settings(nats_url, upstream.url, tmp_path / "spool")
    edge = EdgeThread(settings).start()
    try:
        body = {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream("POST", edge.base_url + "/v1/messages", json=body, headers=headers) as got,
        ):
            assert got.status_code == 200
            pieces = got.aiter_raw()
            received = [await anext(pieces)]  # the stream has begun; now the client reads nothing
            written = await stalled(upstream)
            assert written < BOUND, f"the edge kept reading: {written} bytes"
            upstream.finish.set()
            received += [piece async for piece in pieces]  # the edge reads on as the client does
        whole = b"".join(received)
        assert whole.endswith(END)
        assert len(whole) == len(END) + upstream.written
    finally:
        edge.stop()
