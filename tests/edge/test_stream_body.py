"""A stream's body writer: under another ASGI server than the edge's own (no chunk writer in the
scope), chunks wait and go out through ``send``, in order, when flushed; under the edge's server
each chunk is framed as uvicorn frames a ``more_body`` message."""

from __future__ import annotations

import asyncio
from typing import Any

from aiapi_edge.asgi import Message, StreamBody
from aiapi_shared.http_guard import CHUNK_WRITER, ChunkWriter


async def test_without_a_chunk_writer_chunks_wait_for_a_flush_and_go_out_in_order() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    body = StreamBody({"type": "http"}, send)
    assert not body.blocked
    body.write(b"one ")
    body.write(b"")
    body.write(b"two")
    assert body.blocked and sent == []  # the writer must flush before it writes more
    await body.flush()
    assert sent == [{"type": "http.response.body", "body": b"one two", "more_body": True}]
    assert not body.blocked
    await body.flush()
    assert len(sent) == 1  # nothing waited: nothing sent


class _Flow:
    def __init__(self) -> None:
        self.write_paused = False
        self.writable = asyncio.Event()

    async def drain(self) -> None:
        await self.writable.wait()


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class _Cycle:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.flow = _Flow()
        self.disconnected = False
        self.response_started = True
        self.chunked_encoding = True
        self.response_complete = False
        self.scope: dict[str, Any] = {"method": "POST"}


async def test_the_chunk_writer_frames_each_chunk_and_stops_at_a_full_buffer() -> None:
    cycle = _Cycle()
    body = StreamBody({CHUNK_WRITER: lambda: ChunkWriter(cycle)}, send=None)  # type: ignore[arg-type]
    body.write(b"event: x\ndata: {}\n\n")
    body.write(b"")  # uvicorn writes no frame for an empty chunk (it would end the body)
    body.write(b"y" * 26)
    assert cycle.transport.writes == [
        b"13\r\nevent: x\ndata: {}\n\n\r\n",
        b"1a\r\n" + b"y" * 26 + b"\r\n",
    ]
    assert not body.blocked
    cycle.flow.write_paused = True
    assert body.blocked
    flushed = asyncio.ensure_future(body.flush())
    await asyncio.sleep(0)
    assert not flushed.done()  # waits for the client's buffer to drain
    cycle.disconnected = True
    assert not body.blocked  # a client gone blocks nothing: its writes are dropped
    body.write(b"dropped")
    assert len(cycle.transport.writes) == 2
    cycle.flow.write_paused = False
    cycle.flow.writable.set()
    await flushed
