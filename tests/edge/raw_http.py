"""HTTP/1.1 over a bare socket: for requests no HTTP client would send (broken framing, heads
without bodies, bodies that stall)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def head(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    key: str | None = None,
    length: int | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: edge"]
    if key is not None:
        lines.append(f"x-api-key: {key}")
    if length is not None:
        lines.append(f"content-length: {length}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    """One response (content-length framed, as every edge answer to a refusal is)."""
    raw_head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawAnswer(int(status_line.split(" ")[1]), headers, body)


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)


async def send_raw(port: int, data: bytes, *, timeout_s: float = 10.0) -> RawAnswer:
    """Send ``data`` and read one answer."""
    reader, writer = await connect(port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), timeout_s)
    finally:
        writer.close()


async def closed_by_peer(reader: asyncio.StreamReader, timeout_s: float = 10.0) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``timeout_s``."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout_s):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """A test upstream's read of one request (head, then a Content-Length body): the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)
