"""The upstream HTTP client against the simulator: keep-alive, both body framings, failures, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiapi_edge.http_client import HttpClient, HttpClientError, HttpResponse, ReadTimeout

from .raw_http import read_request
from .support import UPSTREAM_KEY, sim_post

HEADERS = {
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
    "x-api-key": UPSTREAM_KEY,
}


def body(text: str, *, stream: bool = False) -> bytes:
    return orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }
    )


async def read_to_end(answer: HttpResponse) -> bytes:
    pieces: list[bytes] = []
    for _ in range(10_000):  # bounded
        piece = await answer.read_chunk()
        if not piece:
            break
        pieces.append(piece)
    return b"".join(pieces)


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(connect_timeout_s=2, read_timeout_s=5)
    yield http
    await http.close()


async def test_a_json_answer_is_read_whole_and_its_connection_reused(
    client: HttpClient, sim_url: str
) -> None:
    sim_post(sim_url, "/_sim/reset")
    for _ in range(3):
        answer = await client.post(sim_url + "/v1/messages", body("hi [[reply: pong]]"), HEADERS)
        assert answer.status == 200
        assert answer.header(b"content-length") is not None
        message = orjson.loads(await answer.read())
        answer.close()
        assert message["content"][0]["text"] == "pong"
    assert client.connections_opened == 1
    assert client.idle_connections(sim_url) == 1


async def test_a_chunked_stream_arrives_in_pieces_and_ends(
    client: HttpClient, sim_url: str
) -> None:
    answer = await client.post(
        sim_url + "/v1/messages", body("[[tokens: 30]]", stream=True), HEADERS
    )
    assert answer.status == 200
    assert answer.header(b"transfer-encoding") == b"chunked"
    data = await read_to_end(answer)
    answer.close()
    assert data.startswith(b"event: message_start")
    assert b"event: message_stop" in data[-120:]
    assert answer.complete
    # Read to the end: the connection went back to the pool and serves the next request.
    again = await client.post(sim_url + "/v1/messages", body("[[reply: x]]"), HEADERS)
    await again.read()
    again.close()
    assert client.connections_opened == 1


async def test_an_answer_left_unread_closes_its_connection(
    client: HttpClient, sim_url: str
) -> None:
    answer = await client.post(
        sim_url + "/v1/messages",
        body("[[tokens: 50]] [[fail: stall after=2 seconds=3 pings=off]]", stream=True),
        HEADERS,
    )
    await answer.read_chunk()
    assert not answer.complete
    answer.close()
    assert client.idle_connections(sim_url) == 0
    follow = await client.post(sim_url + "/v1/messages", body("[[reply: y]]"), HEADERS)
    assert orjson.loads(await follow.read())["content"][0]["text"] == "y"
    follow.close()
    assert client.connections_opened == 2


@pytest.mark.parametrize("stream", [True, False])
async def test_a_connection_dropped_mid_body_is_an_error_never_a_short_answer(
    client: HttpClient, sim_url: str, stream: bool
) -> None:
    answer = await client.post(
        sim_url + "/v1/messages",
        body("[[tokens: 20]] [[fail: disconnect after=3]]", stream=stream),
        HEADERS,
    )
    assert answer.status == 200
    with pytest.raises(HttpClientError):
        await read_to_end(answer)
    answer.close()
    assert client.idle_connections(sim_url) == 0


async def test_a_refused_connection_and_a_silent_upstream_are_errors(sim_url: str) -> None:
    http = HttpClient(connect_timeout_s=2, read_timeout_s=0.3)
    try:
        with pytest.raises(HttpClientError):
            await http.post("http://127.0.0.1:9/v1/messages", b"{}", HEADERS)
        with pytest.raises(ReadTimeout):
            await http.post(
                sim_url + "/v1/messages", body("[[reply: late]] [[fail: stall seconds=3]]"), HEADERS
            )
    finally:
        await http.close()


# -- TLS -----------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary to make a self-signed certificate (and no cryptography)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_an_https_upstream_is_reached_over_tls_with_keep_alive(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    served = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while True:
            payload = await read_request(reader)
            served += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()

    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    client_tls = ssl.create_default_context(cafile=str(cert))
    http = HttpClient(connect_timeout_s=5, read_timeout_s=5, ssl_context=client_tls)
    try:
        for n in range(2):
            # localhost: the certificate's name is checked against the URL's host
            reply = await http.post(f"https://localhost:{port}/echo", b'{"n": %d}' % n, {})
            assert (reply.status, await reply.read()) == (200, b'{"n": %d}' % n)
            reply.close()
        assert http.connections_opened == 1 and served == 2
        strict = HttpClient(connect_timeout_s=5, read_timeout_s=5)  # the system trust store
        with pytest.raises(HttpClientError):
            await strict.post(f"https://localhost:{port}/echo", b"{}", {})
        await strict.close()
    finally:
        await http.close()
        server.close()
        await server.wait_closed()


async def test_the_system_trust_store_is_loaded_once_not_per_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = real()
        made.append(context)
        return context

    monkeypatch.setattr(ssl, "create_default_context", counting)
    strict = HttpClient(connect_timeout_s=5, read_timeout_s=5)  # the system trust store
    try:
        for _ in range(3):  # each a new connection: the self-signed certificate is refused
            with pytest.raises(HttpClientError):
                await strict.post(f"https://localhost:{port}/echo", b"{}", {})
        assert len(made) == 1
    finally:
        await strict.close()
        server.close()
        await server.wait_closed()


# -- the read timeout: one timer per connection, moved lazily ------------------------------------


Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[str]:
    """An upstream that reads each request on a connection and answers it with ``script``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await read_request(reader)
                await script(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def json_head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n".encode()


async def test_an_upstream_that_stalls_mid_body_gets_a_read_timeout() -> None:
    async def stall(writer: asyncio.StreamWriter) -> None:
        writer.write(json_head(10) + b'{"a"')
        await asyncio.sleep(30)

    http = HttpClient(connect_timeout_s=2, read_timeout_s=0.3)
    async with scripted(stall) as url:
        try:
            answer = await http.post(url + "/v1/messages", b"{}", {})
            assert answer.status == 200
            with pytest.raises(ReadTimeout):
                await answer.read()
            answer.close()
        finally:
            await http.close()


async def test_a_slow_but_steady_upstream_is_not_timed_out() -> None:
    """Each byte comes well within the read timeout; the whole body takes several timeouts:
    the one timer set at the request must move with every wait, not fire at its first due time."""
    body = b"x" * 40

    async def drip(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.1)
        writer.write(json_head(len(body)))
        for byte in body:
            await asyncio.sleep(0.1)
            writer.write(bytes([byte]))

    http = HttpClient(connect_timeout_s=2, read_timeout_s=1.5)
    async with scripted(drip) as url:
        try:
            answer = await http.post(url + "/v1/messages", b"{}", {})
            assert await answer.read() == body
            answer.close()
            # The kept-alive connection's timer, set by the first request, does not time out a
            # second request that waits for its head past the first one's due time.
            await asyncio.sleep(1.0)
            again = await http.post(url + "/v1/messages", b"{}", {})
            assert await again.read() == body
            again.close()
            assert http.connections_opened == 1
        finally:
            await http.close()


async def test_requests_on_a_kept_alive_connection_set_no_timer_each(
    client: HttpClient, sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await client.post(sim_url + "/v1/messages", body("[[reply: a]]"), HEADERS)
    await first.read()
    first.close()
    loop = asyncio.get_running_loop()
    timers: list[object] = []
    call_at = loop.call_at

    def counting(when: float, callback: Callable[..., object], *args: object, **kw: Any) -> Any:
        timers.append(callback)
        return call_at(when, callback, *args, **kw)

    monkeypatch.setattr(loop, "call_at", counting)
    for _ in range(20):
        answer = await client.post(sim_url + "/v1/messages", body("[[reply: b]]"), HEADERS)
        assert orjson.loads(await answer.read())["content"][0]["text"] == "b"
        answer.close()
    assert client.connections_opened == 1
    assert len(timers) <= 1, timers
