"""Small ASGI helpers: reading a bounded body, sending whole responses. No routing here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiapi_shared.errors import Problem
from aiapi_shared.http_guard import (
    CHUNK_WRITER,
    WHOLE_REQUEST,  # set once the whole request has arrived
    ChunkWriter,
)

from aiapi_edge.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = b"application/json"
# A key of the ``http.response.start`` message :func:`send_whole` sends: the body follows at once,
# so the head may wait for it and go out in the same write (``app.Call.send``; servers ignore it).
WHOLE = "aiapi.whole"
EVENT_STREAM = b"text/event-stream; charset=utf-8"


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def too_large(limit: int) -> GatewayError:
    return GatewayError(Problem.TOO_LARGE, f"Request body exceeds {limit} bytes.")


def declared_length(scope: Scope) -> int | None:
    """The ``content-length`` the client declared (httptools has already refused a malformed one)."""
    declared = header(scope, b"content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


class BodyReader:
    """Reads request bodies within the edge's bounds: size, time, and how many at once.

    A body that arrived whole with its head (the usual few kilobytes: uvicorn hands it over in
    the first message) is taken at once. A longer one needs one of ``slots`` read slots, waited
    for at most ``slot_wait_s`` (then 503 with ``retry-after``): at most ``slots`` bodies are
    being gathered at any moment, so slow or huge uploads hold at most ``slots × limit`` bytes.
    The whole body must arrive within ``timeout_s`` of the first read (else 408 and the
    connection is closed): a client trickling bytes cannot hold a slot for long.
    """

    def __init__(self, limit: int, timeout_s: float, slots: int, slot_wait_s: float) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self.slot_wait_s = slot_wait_s
        self._slots = asyncio.Semaphore(slots)

    async def read(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body; 413 as soon as it is known to exceed the limit."""
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            raise too_large(self.limit)
        if scope.get(WHOLE_REQUEST):  # already in the server's buffer: no wait, no timer
            first = await receive()
            if not first.get("more_body", False):
                return self._chunk(first, 0)
            return await self._timed(receive, first)
        return await self._timed(receive, None)

    async def _timed(self, receive: Receive, first: Message | None) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_s):
                if first is None:
                    first = await receive()
                chunk = self._chunk(first, 0)
                if not first.get("more_body", False):
                    return chunk
                await self._take_slot()
                try:
                    return await self._rest(receive, chunk)
                finally:
                    self._slots.release()
        except TimeoutError:
            raise body_timeout(self.timeout_s) from None

    async def _take_slot(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken without suspending
            return
        try:
            async with asyncio.timeout(self.slot_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise GatewayError(
                Problem.UNAVAILABLE, "Too many request bodies are being read.", retry_after=1
            ) from None

    async def _rest(self, receive: Receive, first: bytes) -> bytes:
        chunks = [first]
        size = len(first)
        while True:
            message = await receive()
            chunk = self._chunk(message, size)
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _chunk(self, message: Message, size: int) -> bytes:
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        if size + len(chunk) > self.limit:
            raise too_large(self.limit)
        return chunk


def body_timeout(timeout_s: float) -> GatewayError:
    return GatewayError(
        Problem.REQUEST_TIMEOUT,
        f"The request body did not arrive within {timeout_s:g} s.",
        close=True,
    )


async def send_whole(
    send: Send, status: int, body: bytes, headers: Headers, content_type: bytes | None = JSON_TYPE
) -> None:
    """A complete response; ``content_type`` None when ``headers`` already carry one."""
    all_headers = [(b"content-length", str(len(body)).encode()), *headers]
    if content_type is not None:
        all_headers.append((b"content-type", content_type))
    await send(
        {"type": "http.response.start", "status": status, "headers": all_headers, WHOLE: True}
    )
    await send({"type": "http.response.body", "body": body})


class StreamBody:
    """The body of a started stream, chunk by chunk, without a coroutine per chunk.

    Under the edge's own server protocol (:mod:`aiapi_shared.http_guard`) each :meth:`write`
    goes straight to the connection; under any other ASGI server the chunks wait here until
    :meth:`flush` sends them. Either way, while :attr:`blocked` the writer must
    ``await flush()`` before writing more: the client's buffer is full (or chunks wait).
    """

    __slots__ = ("_direct", "_pending", "_send")

    def __init__(self, scope: Scope, send: Send) -> None:
        make = scope.get(CHUNK_WRITER)
        self._direct: ChunkWriter | None = make() if make is not None else None
        self._send = send
        self._pending: list[bytes] = []

    def write(self, body: bytes) -> None:
        if self._direct is not None:
            self._direct.write(body)
        elif body:
            self._pending.append(body)

    @property
    def blocked(self) -> bool:
        direct = self._direct
        return direct.blocked if direct is not None else bool(self._pending)

    async def flush(self) -> None:
        if self._direct is not None:
            await self._direct.drain()
        elif self._pending:
            body = b"".join(self._pending)
            self._pending.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
