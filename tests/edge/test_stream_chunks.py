"""A stream's bytes reach the client exactly as the upstream wrote them, however the upstream
cut them: several events in one write, an event split across writes, shapes other than the
usual ``event:``/``data:`` pair. The edge reads only the events it meters and guards the hold
with, and its usage event still carries the upstream's counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiapi_shared.bus import Bus

from .raw_http import read_request
from .support import Billing, EdgeThread, edge_settings, key_record, make_key, put_key, usage_events


def sse(name: str, data: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


START = sse(
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_chunks",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [],
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 5},
        },
    },
)
BLOCK = sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}})  # fmt: skip


def delta(text: str) -> bytes:
    body = {"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}  # fmt: skip
    return sse("content_block_delta", body)


END = (
    sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    + sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 7},
        },
    )
    + sse("message_stop", {"type": "message_stop"})
)

# The writes of the upstream's answer body, each one chunk on the wire: many events at once, an
# event cut in two (inside its data line), a comment, a data line without its space, a ping.
WRITES = [
    START + BLOCK + b"".join(delta(f"tok{i} ") for i in range(12)),
    b": a comment the client still gets\n\n" + delta("split ")[:31],
    delta("split ")[31:] + b'event: ping\ndata:{"type": "ping"}\n\n',
    delta("last") + END,
]


@pytest.fixture
async def raw_upstream() -> AsyncIterator[str]:
    """An upstream that answers every POST with :data:`WRITES`, one chunk per write."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        for piece in WRITES:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05)  # each write its own read at the edge
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def test_the_client_gets_the_upstream_bytes_exactly_and_the_usage_is_metered(
    bus: Bus, nats_url: str, billing: Billing, raw_upstream: str, tmp_path: Path
) -> None:
    key = make_key()
    await put_key(bus, key, key_record("acct_chunks"))
    edge = EdgeThread(edge_settings(nats_url, raw_upstream, tmp_path / "spool")).start()
    try:
        body = {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream("POST", edge.base_url + "/v1/messages", json=body, headers=headers) as got,
        ):
            assert got.status_code == 200
            received = b"".join([piece async for piece in got.aiter_raw()])
        assert received == b"".join(WRITES)
        [event] = await usage_events(bus, 1)
        assert event.outcome == "ok" and not event.client_disconnected
        assert (event.usage.input_tokens, event.usage.output_tokens) == (12, 7)
        assert event.usage.cache_read_input_tokens == 5
        assert event.hold_id is not None  # admitted with a hold: the hold guard watched it
    finally:
        edge.stop()
