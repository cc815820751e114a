"""A complete response leaves the edge in one transport write, head and body together; a
stream's head still leaves at once, before its first event (docs/performance.md, "One write").

A real uvicorn server runs the edge's HTTP protocol; underneath it, the socket's transport is
wrapped to record every write the server makes, so the test sees what reaches the kernel, not
what the application asked for.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import uvicorn
from aiapi_edge.app import Call
from aiapi_edge.http_guard import GuardedHttpProtocol
from aiapi_shared.runner import listen

from .raw_http import connect, head, read_answer

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]
BODY = orjson.dumps({"type": "message", "content": [{"type": "text", "text": "ok"}]})


class RecordingTransport:
    """The socket's transport, with each write the server makes recorded (one entry a call)."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self.writes = writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        chunks = [bytes(c) for c in chunks]
        self.writes.append(b"".join(chunks))
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Server:
    def __init__(self, app: App) -> None:
        self.writes: list[bytes] = []
        writes = self.writes

        class Recorded(GuardedHttpProtocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(RecordingTransport(transport, writes))  # type: ignore[arg-type]

        self.sock: socket.socket = listen("127.0.0.1", 0)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, http=Recorded, lifespan="off", access_log=False, log_config=None, loop="none"
        )
        self.server = uvicorn.Server(config)

    async def __aenter__(self) -> Server:
        # The socket already listens: a client's connection waits in its backlog until then.
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        await self.task
        self.sock.close()


async def whole(scope: Scope, receive: Any, send: Any) -> None:
    """A JSON answer the way the edge sends every complete one (``Call.json``)."""
    if scope["type"] == "http":
        await Call(scope, receive, send, openai=False).json(200, BODY)


@pytest.fixture
async def whole_server() -> AsyncIterator[Server]:
    async with Server(whole) as server:
        yield server


async def test_a_complete_response_is_one_write_of_head_and_body(whole_server: Server) -> None:
    reader, writer = await connect(whole_server.port)
    try:
        for _ in range(3):  # each response on a kept-alive connection
            before = len(whole_server.writes)
            writer.write(head("POST", "/v1/messages", length=2) + b"{}")
            answer = await asyncio.wait_for(read_answer(reader), 10)
            assert answer.status == 200
            assert answer.body == BODY
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["request-id"].startswith("req_")
            written = whole_server.writes[before:]
            assert len(written) == 1, written
            assert written[0].startswith(b"HTTP/1.1 200 OK\r\n")
            assert written[0].endswith(b"\r\n\r\n" + BODY)
    finally:
        writer.close()


async def test_a_head_request_gets_its_held_head_when_the_response_completes(
    whole_server: Server,
) -> None:
    """uvicorn writes no body for HEAD: the head held for it goes out as the response ends."""
    reader, writer = await connect(whole_server.port)
    try:
        writer.write(head("HEAD", "/v1/models"))
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert f"content-length: {len(BODY)}".encode() in raw
        assert len(whole_server.writes) == 1
        # The connection still serves the next request, in one write again.
        writer.write(head("POST", "/v1/messages", length=2) + b"{}")
        answer = await asyncio.wait_for(read_answer(reader), 10)
        assert answer.body == BODY
        assert len(whole_server.writes) == 2
    finally:
        writer.close()


async def test_a_stream_head_leaves_before_its_first_event() -> None:
    """A stream does not ask for the join: its head (the client's first byte) is written at
    once, while the application still waits for the upstream."""
    first_event = asyncio.Event()

    async def stream(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        call = Call(scope, receive, send, openai=False)
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        await call.send({"type": "http.response.start", "status": 200, "headers": headers})
        await first_event.wait()
        await call.send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await call.send({"type": "http.response.body", "body": b"data: 2\n\n"})

    async with Server(stream) as server:
        reader, writer = await connect(server.port)
        try:
            writer.write(head("POST", "/v1/messages", length=2) + b"{}")
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"transfer-encoding: chunked" in raw
            assert len(server.writes) == 1  # the head alone; no event exists yet
            first_event.set()
            rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)
            assert b"data: 1\n\n" in rest
            assert b"data: 2\n\n" in rest
        finally:
            writer.close()
