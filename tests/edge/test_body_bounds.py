"""What a request costs the edge before it is known to be worth serving (docs/edge.md, "Bounds").

The key is checked from the head alone; a declared or streamed body over the limit is refused
as soon as that is known; a body or a head that does not arrive in time is refused and its
connection closed; only a bounded number of long bodies are gathered at once; a head over its
size limit is refused. Every refusal is JSON in the route's own error format.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from .conftest import EdgeEnv
from .raw_http import closed_by_peer, connect, head, read_answer, send_raw

LIMIT = 1024 * 1024
BODY = orjson.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
)


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {
        "edge_max_body_bytes": LIMIT,
        "edge_body_timeout_s": 3.0,
        "edge_body_reads": 1,
        "edge_header_timeout_s": 1.0,
        "edge_max_header_bytes": 8 * 1024,
    }


def port(env: EdgeEnv) -> int:
    return env.edge.port


def anthropic_error(answer: Any) -> str:
    body = answer.json()
    assert body["type"] == "error"
    assert body["request_id"] == answer.headers["request-id"]
    error_type: str = body["error"]["type"]
    return error_type


async def test_an_unknown_key_is_refused_from_the_head_alone(env: EdgeEnv) -> None:
    # Only the head is sent: the 401 comes without the edge waiting for one byte of the body.
    for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions"):
        for key in (None, "sk-cc-unknownunknownunknown"):
            answer = await send_raw(port(env), head("POST", path, key=key, length=30 << 20))
            assert answer.status == 401
            if path.endswith("chat/completions"):
                assert answer.json()["error"]["code"] == "invalid_api_key"
            else:
                assert anthropic_error(answer) == "authentication_error"


async def test_a_declared_length_over_the_limit_is_refused_at_once(env: EdgeEnv) -> None:
    answer = await send_raw(port(env), head("POST", "/v1/messages", key=env.key, length=LIMIT + 1))
    assert answer.status == 413
    assert anthropic_error(answer) == "request_too_large"
    answer = await send_raw(
        port(env), head("POST", "/v1/chat/completions", key=env.key, length=LIMIT + 1)
    )
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "request_too_large"


async def test_a_chunked_body_stops_at_the_limit(env: EdgeEnv) -> None:
    reader, writer = await connect(port(env))
    try:
        writer.write(head("POST", "/v1/messages", {"transfer-encoding": "chunked"}, key=env.key))
        chunk = b"x" * 65536
        answer_task = asyncio.ensure_future(read_answer(reader))
        sent = 0
        # The body never ends (no last chunk): an answer can only come from the edge stopping
        # at the limit while the client is still writing.
        while not answer_task.done() and sent < 64 * LIMIT:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)
        answer = await asyncio.wait_for(answer_task, 10)
    finally:
        writer.close()
    assert answer.status == 413
    assert anthropic_error(answer) == "request_too_large"


async def test_a_stalled_body_gets_408_and_its_connection_closed(env: EdgeEnv) -> None:
    reader, writer = await connect(port(env))
    try:
        writer.write(head("POST", "/v1/messages", key=env.key, length=1000) + b'{"model":')
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), 15)
        assert answer.status == 408
        assert answer.headers["connection"] == "close"
        assert anthropic_error(answer) == "invalid_request_error"
        assert await closed_by_peer(reader)
    finally:
        writer.close()


async def test_long_bodies_are_read_a_bounded_number_at_a_time(env: EdgeEnv) -> None:
    # The one read slot is held by a client that stalls mid-body...
    hog_reader, hog = await connect(port(env))
    waiter_reader, waiter = await connect(port(env))
    try:
        hog.write(head("POST", "/v1/messages", key=env.key, length=1000) + b"{")
        await hog.drain()
        await asyncio.sleep(0.3)
        # ...so a second long body waits for a slot, then gets 503 with retry-after...
        waiter.write(head("POST", "/v1/chat/completions", key=env.key, length=1000) + b"{")
        await waiter.drain()
        answer = await asyncio.wait_for(read_answer(waiter_reader), 15)
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["type"] == "api_error"
        # ...while a body that arrives whole with its head needs no slot at all.
        async with httpx.AsyncClient(base_url=env.url, timeout=10) as http:
            ok = await http.post("/v1/messages", content=BODY, headers={"x-api-key": env.key})
        assert ok.status_code == 200
        assert (await asyncio.wait_for(read_answer(hog_reader), 15)).status == 408
    finally:
        hog.close()
        waiter.close()


async def test_a_slow_head_gets_408_and_its_connection_closed(env: EdgeEnv) -> None:
    reader, writer = await connect(port(env))
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\nx-api-")
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), 15)
        assert answer.status == 408
        assert answer.json()["error"]["type"] == "invalid_request_error"  # the OpenAI shape
        assert answer.headers["x-request-id"] == answer.headers["request-id"]
        assert await closed_by_peer(reader)
    finally:
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed(env: EdgeEnv) -> None:
    reader, writer = await connect(port(env))
    try:
        assert await closed_by_peer(reader, timeout_s=15)
    finally:
        writer.close()


async def test_a_kept_alive_connection_times_each_head_from_its_first_byte(env: EdgeEnv) -> None:
    reader, writer = await connect(port(env))
    try:
        for _ in range(3):  # quiet time between requests is the keep-alive timeout's, not ours
            await asyncio.sleep(0.6)
            writer.write(head("POST", "/v1/messages", key=env.key, length=len(BODY)) + BODY)
            await writer.drain()
            assert (await asyncio.wait_for(read_answer(reader), 15)).status == 200
    finally:
        writer.close()


async def test_an_oversized_head_gets_431_and_its_connection_closed(env: EdgeEnv) -> None:
    reader, writer = await connect(port(env))
    try:
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: edge\r\nx-filler: " + b"a" * 16384)
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), 15)
        assert answer.status == 431
        assert anthropic_error(answer) == "invalid_request_error"
        assert await closed_by_peer(reader)
    finally:
        writer.close()


async def test_an_endless_head_is_cut_off(env: EdgeEnv) -> None:
    # httptools alone would keep all of it in memory; the edge closes the connection instead,
    # so the client's writes fail long before 64 MiB.
    _, writer = await connect(port(env))

    async def endless_head() -> None:
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: edge\r\nx-filler: ")
        for _ in range(1024):
            writer.write(b"a" * 65536)
            await writer.drain()

    with pytest.raises(ConnectionError):
        await endless_head()
    writer.close()


async def test_a_normal_request_still_succeeds_after_all_that(env: EdgeEnv) -> None:
    await test_a_stalled_body_gets_408_and_its_connection_closed(env)
    await test_an_oversized_head_gets_431_and_its_connection_closed(env)
    await test_an_endless_head_is_cut_off(env)
    sdk = env.anthropic()
    message = await sdk.messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content


async def test_a_pipelined_head_behind_a_long_stream_is_not_cut_off(env: EdgeEnv) -> None:
    # The stream lasts three head timeouts; the next request's head is half sent meanwhile.
    # A client reading a long answer is not stalling: the stream must end whole.
    stream = orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 20,
            "stream": True,
            "messages": [{"role": "user", "content": "x [[fail: stall after=2 seconds=3]]"}],
        }
    )
    reader, writer = await connect(port(env))
    try:
        writer.write(head("POST", "/v1/messages", key=env.key, length=len(stream)) + stream)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: edge\r\n")
        await writer.drain()
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        assert raw_head.startswith(b"HTTP/1.1 200")
        received = b""
        while b"0\r\n\r\n" not in received[-16:]:  # the last chunk of the chunked stream
            data = await asyncio.wait_for(reader.read(65536), 15)
            assert data, "the connection closed before the stream ended"
            received += data
        assert b"message_stop" in received
    finally:
        writer.close()
