"""The edge's own CPU per streamed event, without the system calls: the Anthropic route's stream
path as the edge runs it, fed canned upstream reads, writing to a transport that discards.

What runs is the product's code from the upstream connection's ``data_received`` to the client
connection's ``transport.write``: the HTTP client's parser and feed (``http_client``), the pump's
feed (``streaming``), the route's chunk handler (``Inference._stream``: the SSE reader, the
usage meter, the hold guard), and the client side's chunk writer (``http_guard``) under the
edge's own uvicorn protocol. Each upstream read is one event framed as one HTTP chunk, as the
fast fake upstream (``bench/fake_upstream.js``) writes a long stream's deltas 20 ms apart. Only
the two ends are not real: the sockets (a read and a write system call per event, measured by
``bench/performance.py --only long`` from /proc) and the edge's admission and usage record
(outside the per-event path). Usage::

    .venv/bin/python bench/stream_event_cost.py [--streams 1000] [--events 200] [--repeat 5]
    PYTHONPATH=<other tree's shared/src and services/edge/src> .venv/bin/python bench/...  # A/B

CPU time (``time.process_time``), not wall time: on a shared machine it is the stable figure.
Each stream ends with the fake upstream's tail, and its metered usage is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import uvloop
from aiapi_edge.anthropic_route import _PassthroughStream
from aiapi_edge.budget import HoldBudget
from aiapi_edge.extension import HoldGuard
from aiapi_edge.gateway import Exchange, Gateway
from aiapi_edge.http_client import HttpClient, HttpResponse, _Connection
from aiapi_edge.http_guard import GuardedHttpProtocol
from aiapi_edge.inference import Inference
from aiapi_edge.metering import UsageMeter
from aiapi_edge.upstream import Upstream, UpstreamAnswer
from aiapi_shared.catalogue import default_catalogue
from uvicorn.config import Config
from uvicorn.server import ServerState


def _sse(name: str, data: str) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), data.encode())


# As bench/fake_upstream.js writes them (JSON.stringify: no spaces).
HEAD = (
    _sse("message_start", '{"type":"message_start","message":{"id":"msg_bench1","type":"message",'
         '"role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,'
         '"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}')
    + _sse("content_block_start", '{"type":"content_block_start","index":0,'
           '"content_block":{"type":"text","text":""}}')
    + _sse("ping", '{"type":"ping"}')
)  # fmt: skip
DELTA = _sse("content_block_delta", '{"type":"content_block_delta","index":0,'
             '"delta":{"type":"text_delta","text":"tok "}}')  # fmt: skip


def tail(output_tokens: int) -> bytes:
    return (
        _sse("content_block_stop", '{"type":"content_block_stop","index":0}')
        + _sse("message_delta", '{"type":"message_delta","delta":{"stop_reason":"end_turn",'
               '"stop_sequence":null},"usage":{"output_tokens":' f"{output_tokens}}}}}")
        + _sse("message_stop", '{"type":"message_stop"}')
    )  # fmt: skip


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk, as Node frames each ``res.write``."""
    return b"%x\r\n%b\r\n" % (len(data), data)


UPSTREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
CLIENT_REQUEST = b"POST /v1/messages HTTP/1.1\r\nhost: edge\r\ncontent-length: 2\r\n\r\n{}"


class Discard(asyncio.Transport):
    """A connected transport whose writes go nowhere (counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


@dataclass
class _Exchange:
    """What the stream path reads and writes of an :class:`~aiapi_edge.gateway.Exchange`."""

    meter: UsageMeter = field(default_factory=UsageMeter)
    request_id: str = "req_bench"
    client_disconnected: bool = False
    outcome: str = "ok"
    status_code: int = 200


class _Gateway:
    """The one thing the stream path asks the gateway: the hold guard (a hold large enough that
    no extension is asked, as for a stream well within its ``max_tokens``)."""

    def __init__(self) -> None:
        catalogue = default_catalogue()
        model = catalogue.model("claude-haiku-4-5")
        price = model.price_at(datetime.now(UTC)) if model is not None else None
        assert price is not None
        self._price = price
        self._multipliers = catalogue.cache_multipliers_bps

    def hold_guard(self, exchange: _Exchange) -> HoldGuard:
        budget = HoldBudget(
            held=10**12,
            price=self._price,
            discount_bps=0,
            multipliers=self._multipliers,
            max_tokens=4096,
        )

        async def refuse(tokens: int) -> int | None:
            return None

        return HoldGuard(refuse, budget, exchange.meter, hold_id="bench")


@dataclass
class Stream:
    upstream: _Connection
    exchange: _Exchange
    client: Discard
    done: asyncio.Future[None]


@dataclass
class Shared:
    """What every stream of an edge worker shares: the route's skeleton, the HTTP client, the
    server's configuration and state."""

    inference: Inference
    http: HttpClient
    config: Config
    state: ServerState


async def open_stream(loop: asyncio.AbstractEventLoop, shared: Shared) -> Stream:
    """A stream whose head has gone to the client and whose pump waits for the upstream."""
    exchange = _Exchange()
    inference, http, config = shared.inference, shared.http, shared.config
    upstream = _Connection(http, ("http", "upstream", 80), loop)
    upstream.connection_made(Discard())
    response = HttpResponse(upstream)
    upstream.send(response, b"POST /v1/messages HTTP/1.1\r\n\r\n", b"{}")
    upstream.data_received(UPSTREAM_HEAD + chunk(HEAD))
    answer = UpstreamAnswer(200, response.headers, response, 0)
    done: asyncio.Future[None] = loop.create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            form = _PassthroughStream(exchange.meter, exchange.request_id)
            ending = await inference._stream(
                cast(Exchange, exchange), form, answer, scope, receive, send
            )
            await ending.deliver(send)
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)
            raise

    config.loaded_app = app  # this connection's application (read once, by the protocol)
    protocol = GuardedHttpProtocol(config, shared.state, {}, _loop=loop)
    client = Discard()
    protocol.connection_made(client)
    protocol.data_received(CLIENT_REQUEST)
    for _ in range(100):  # the loop's turns until the pump has installed its feed
        if response._sink is not None:
            break
        await asyncio.sleep(0)
    assert response._sink is not None, "the stream path did not start"

    return Stream(upstream, exchange, client, done)


async def run(streams: int, events: int, memory: bool = False) -> float:
    """CPU seconds per delta event over ``streams`` streams of ``events`` deltas each, fed one
    read at a time, round robin (as many open streams' reads arrive). ``memory``: also print
    the Python memory each open stream holds mid-stream (tracemalloc; CPU figures then slower)."""
    loop = asyncio.get_running_loop()
    gateway = cast(Gateway, _Gateway())
    inference = Inference(gateway, cast(Upstream, None), ping_interval=15.0, drain_s=30.0)
    config = Config(app=_Exchange, http=GuardedHttpProtocol, loop="none", log_level="error")
    config.load()
    shared = Shared(inference, HttpClient(), config, ServerState())
    if memory:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
    opened = [await open_stream(loop, shared) for _ in range(streams)]
    read = chunk(DELTA)
    feeds = [stream.upstream.data_received for stream in opened]
    gc.collect()
    started = time.process_time()
    for _ in range(events):
        for feed in feeds:
            feed(read)
    spent = time.process_time() - started
    if memory:
        gc.collect()
        grown = tracemalloc.take_snapshot().compare_to(before, "lineno")
        tracemalloc.stop()
        total = sum(stat.size_diff for stat in grown)
        print(f"  Python memory per open stream: {total / streams / 1024:.1f} KiB; largest:")
        for stat in grown[:8]:
            print(f"    {stat.size_diff / streams:7.0f} B  {stat.traceback}")
    last = chunk(tail(events)) + b"0\r\n\r\n"
    for feed in feeds:
        feed(last)
    await asyncio.gather(*(stream.done for stream in opened))
    for stream in opened:  # each stream whole at the client, and metered as the upstream said
        assert stream.exchange.meter.complete, "a stream did not complete"
        assert stream.exchange.meter.usage.get("output_tokens") == events
        assert stream.client.written > events * len(DELTA), "the client did not get the events"
    return spent / (streams * events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="open streams (default 1000)")
    parser.add_argument("--events", type=int, default=200, help="deltas per stream (200)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the median is the figure")
    parser.add_argument("--memory", action="store_true", help="Python memory per open stream")
    args = parser.parse_args()
    print(f"aiapi_edge from {__import__('aiapi_edge').__file__}")
    if args.memory:
        uvloop.run(run(args.streams, args.events, memory=True))
        return
    figures = []
    for _ in range(args.repeat):
        figures.append(uvloop.run(run(args.streams, args.events)) * 1e6)
        print(f"  {figures[-1]:.2f} µs")
    print(
        f"{statistics.median(figures):.2f} µs of edge CPU per streamed event (median of "
        f"{args.repeat}, {min(figures):.2f}–{max(figures):.2f}; {args.streams} streams × "
        f"{args.events} events, system calls excluded)"
    )


if __name__ == "__main__":
    main()
