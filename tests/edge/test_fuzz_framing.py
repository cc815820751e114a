"""Broken HTTP framing over a bare socket: bad chunk sizes, conflicting or malformed
``content-length`` and ``transfer-encoding``, truncated bodies and heads, oversized heads,
garbage. Each gets a 4xx as JSON in the route's own error format (or, when the client itself
hangs up, nothing), never a 5xx, never a stuck connection; and the edge serves normally after.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import EdgeEnv
from .fuzz_bodies import fuzz_settings
from .raw_http import RawAnswer, closed_by_peer, connect, read_answer

BODY = orjson.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
)


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    # Short timeouts: a truncated body or head is answered (408) within a second.
    return {
        "edge_body_timeout_s": 1.0,
        "edge_header_timeout_s": 1.0,
        "edge_max_header_bytes": 16 * 1024,
    }


def request(
    head_lines: list[bytes],
    body: bytes = b"",
    *,
    method: bytes = b"POST",
    path: bytes = b"/v1/messages",
) -> bytes:
    return b"\r\n".join([method + b" " + path + b" HTTP/1.1", b"host: edge", *head_lines]) + (
        b"\r\n\r\n" + body
    )


def check(answer: RawAnswer) -> None:
    # 200 for a request that got through, 204 for an OPTIONS (a CORS preflight), else a 4xx.
    assert answer.status in (200, 204) or 400 <= answer.status < 500, (
        answer.status,
        answer.body[:300],
    )
    if answer.status in (200, 204):
        return
    body = answer.json()
    assert answer.headers["request-id"].startswith("req_")
    if "x-request-id" in answer.headers:
        assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    else:
        assert body["type"] == "error", body
        assert body["request_id"] == answer.headers["request-id"], body


async def exchange(port: int, data: bytes) -> RawAnswer | None:
    """Send ``data`` and read one answer; None when the edge closed without one."""
    reader, writer = await connect(port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), 20)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    finally:
        writer.close()


def key_line(env: EdgeEnv) -> bytes:
    return b"x-api-key: " + env.key.encode()


def broken_requests(env: EdgeEnv) -> dict[str, tuple[bytes, set[int]]]:
    """Each request and the statuses it may get."""
    key = key_line(env)
    chunked = b"transfer-encoding: chunked"
    length = b"content-length: %d" % len(BODY)
    return {
        "bad chunk size": (request([key, chunked], b"zz\r\nabc\r\n0\r\n\r\n"), {400}),
        "chunk size overflow": (
            request([key, chunked], b"f" * 40 + b"\r\nabc\r\n0\r\n\r\n"),
            {400},
        ),
        "chunk longer than said": (request([key, chunked], b"2\r\nabcdef\r\n0\r\n\r\n"), {400}),
        "length and chunked": (
            request([key, b"content-length: 5", chunked], b"5\r\nhello\r\n0\r\n\r\n"),
            {400},
        ),
        "two lengths": (
            request([key, b"content-length: 2", b"content-length: 3"], b"{}x"),
            {400},
        ),
        "negative length": (request([key, b"content-length: -1"], b"{}"), {400}),
        "length not a number": (request([key, b"content-length: 1e3"], b"{}"), {400}),
        "unknown coding": (request([key, b"transfer-encoding: gzip, chunked2"], b"{}"), {400}),
        "truncated body": (request([key, b"content-length: 100"], b'{"model":'), {408}),
        "truncated chunk": (request([key, chunked], b"100\r\n{}"), {408}),
        "truncated head": (b"POST /v1/messages HTTP/1.1\r\nhost: edge\r\nx-api-key: sk", {408}),
        "oversized head": (request([key, length, b"x-filler: " + b"a" * 20000], BODY), {431}),
        "many headers": (
            request([key, length, *(b"x-h%d: v" % i for i in range(3000))], BODY),
            {431},
        ),
        "oversized url": (
            request([key, length], BODY, path=b"/v1/messages?" + b"q" * 20000),
            {431},
        ),
        "nul in header": (request([key, b"x-a: a\x00b", b"content-length: 2"], b"{}"), {400}),
        "space before colon": (request([key, b"x-a : b", b"content-length: 2"], b"{}"), {400}),
        "folded header": (request([key, b"x-a: b", b" c", b"content-length: 2"], b"{}"), {400}),
        "bad method": (request([key], b"", method=b"G\x01T"), {400}),
        "bad version": (b"POST /v1/messages HTTP/7.1\r\nhost: edge\r\n\r\n", {400}),
        "http/0.9": (b"GET /\r\n\r\n", {400, 404}),
        "tls hello": (bytes.fromhex("16030100a5010000a10303") + b"\x00" * 64, {400}),
        "garbage": (b"\xff\xfe\xfd\r\n\r\n", {400}),
        "bare lf": (
            b"POST /v1/messages HTTP/1.1\nhost: edge\n" + key + b"\ncontent-length: 2\n\n{}",
            {400},
        ),
        "openai bad chunk": (
            request([key, chunked], b"zz\r\n", path=b"/v1/chat/completions"),
            {400},
        ),
        "websocket upgrade": (
            request(
                [key, b"connection: upgrade", b"upgrade: websocket", b"sec-websocket-version: 13"],
                method=b"GET",
                path=b"/v1/messages",
            ),
            {404},
        ),
        "expect continue without key": (
            request([b"expect: 100-continue", b"content-length: 10"], b""),
            {401},
        ),
    }


async def test_each_broken_frame_gets_a_4xx_in_the_routes_format(env: EdgeEnv) -> None:
    port = env.edge.port
    for name, (data, expected) in broken_requests(env).items():
        answer = await exchange(port, data)
        assert answer is not None, name
        assert answer.status in expected, (name, answer.status, answer.body[:200])
        check(answer)
        if name.startswith("openai"):
            assert answer.headers["x-request-id"] == answer.headers["request-id"]
    await serves(env)


async def test_a_client_that_hangs_up_mid_body_leaves_nothing_behind(env: EdgeEnv) -> None:
    for _ in range(20):
        reader, writer = await connect(env.edge.port)
        writer.write(request([key_line(env), b"content-length: 1000"], b'{"model":'))
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.shutdown(socket.SHUT_WR)
        assert await closed_by_peer(reader)
        writer.close()
    await serves(env)


async def test_pipelined_requests_are_answered_in_order(env: EdgeEnv) -> None:
    one = request([key_line(env), b"content-length: %d" % len(BODY)], BODY)
    bad = request([key_line(env), b"content-length: 3"], b"{x}")
    reader, writer = await connect(env.edge.port)
    try:
        writer.write(one + bad + one)
        await writer.drain()
        statuses = [(await asyncio.wait_for(read_answer(reader), 20)).status for _ in range(3)]
    finally:
        writer.close()
    assert statuses == [200, 400, 200]


fragments = st.sampled_from(
    [
        b"content-length: 0",
        b"content-length: 2",
        b"content-length: 99999999999999999999",
        b"content-length: +2",
        b"content-length: 2, 2",
        b"transfer-encoding: chunked",
        b"transfer-encoding: identity",
        b"transfer-encoding: chunked, chunked",
        b"content-type: application/json",
        b"x-api-key:",
        b"authorization: Bearer",
        b"authorization: Basic Zm9vOmJhcg==",
        b"connection: close",
        b"connection: upgrade",
        b"upgrade: websocket",
        b"expect: 100-continue",
        b"host: other",
        b":",
        b"\x80: \xff",
    ]
)
bodies = st.sampled_from(
    [b"", b"{}", b"0\r\n\r\n", b"2\r\n{}\r\n0\r\n\r\n", b"zz\r\n\r\n", BODY, b"\x00" * 10]
)


def fuzz_frames(env: EdgeEnv, examples: int) -> None:
    @fuzz_settings(examples)
    @given(
        method=st.sampled_from([b"POST", b"GET", b"PUT", b"OPTIONS", b"HEAD", b"POST\t"]),
        path=st.sampled_from(
            [
                b"/v1/messages",
                b"/v1/chat/completions",
                b"/v1/models/x",
                b"/%zz",
                b"*",
                b"//",
                b"/v1/messages#f",
            ]
        ),
        lines=st.lists(fragments | st.binary(max_size=20), max_size=5),
        keyed=st.booleans(),
        body=bodies | st.binary(max_size=64),
    )
    def run(method: bytes, path: bytes, lines: list[bytes], keyed: bool, body: bytes) -> None:
        head_lines = [key_line(env)] if keyed else []
        data = request(head_lines + lines, body, method=method, path=path)
        answer = asyncio.run(exchange(env.edge.port, data))
        # None: the edge closed the connection without an answer (a HEAD answer has no body
        # to read, an upgrade it does not serve); anything said must be well formed.
        if answer is not None and method != b"HEAD":
            check(answer)

    run()


@pytest.mark.slow
async def test_fuzzed_frames_never_get_a_5xx(env: EdgeEnv) -> None:
    await asyncio.to_thread(fuzz_frames, env, 150)
    await serves(env)


async def serves(env: EdgeEnv) -> None:
    async with httpx.AsyncClient(base_url=env.url, timeout=10) as http:
        answer = await http.post("/v1/messages", content=BODY, headers={"x-api-key": env.key})
    assert answer.status_code == 200, answer.text
