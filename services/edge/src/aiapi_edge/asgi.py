"""Small ASGI helpers: reading a bounded body, sending whole responses. No routing here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiapi_edge.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, "request_too_large", f"Request body exceeds {limit} bytes.")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 as soon as it is known to exceed ``limit``."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_whole(
    send: Send, status: int, body: bytes, headers: Headers, content_type: bytes | None = JSON_TYPE
) -> None:
    """A complete response; ``content_type`` None when ``headers`` already carry one."""
    all_headers = [(b"content-length", str(len(body)).encode()), *headers]
    if content_type is not None:
        all_headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})
