"""Acting out a reply on the wire: pacing, pings, and the stream faults (error, stall, drop).

The only module that waits. When nothing needs pacing or a fault, a whole stream is written
in one send, which keeps the simulator cheap as a benchmark baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from starlette.types import Receive, Send

from aiapi_simulator.faults import Fault
from aiapi_simulator.sse import OVERLOADED, PING, StreamScript
from aiapi_simulator.wire import Headers


class ClientWatch:
    """Notices the client going away, so long waits end early instead of holding a task."""

    def __init__(self, receive: Receive) -> None:
        self._gone = asyncio.Event()
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._gone.set()
                return

    async def sleep(self, seconds: float) -> bool:
        """Wait; true when the whole time passed, false when the client left first."""
        if self._gone.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._gone.wait()
            return False
        return True

    def close(self) -> None:
        self._task.cancel()


async def _send_more(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def pause(watch: ClientWatch, send: Send, seconds: float, ping_interval: float) -> bool:
    """Wait `seconds`, sending a ping after every full `ping_interval` (0: none) within it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        if 0 < ping_interval < remaining:
            if not await watch.sleep(ping_interval):
                return False
            await _send_more(send, PING)
        else:
            return await watch.sleep(remaining)


def strike_index(script: StreamScript, after: int) -> int:
    """The frame a stream fault replaces: the delta that would follow the first `after` deltas,
    or `message_delta` when the stream has no more deltas than that."""
    seen = 0
    for index, is_delta in enumerate(script.deltas):
        if is_delta:
            if seen == after:
                return index
            seen += 1
    return len(script.frames) - 2


@dataclass(slots=True)
class Delivery:
    """What an answer got out: ``sent`` frames of a stream (a JSON body: 1 when whole, else 0)
    were handed to the server; ``client_gone``: the client left before the answer ended."""

    sent: int = 0
    client_gone: bool = False


async def play_stream(
    send: Send,
    receive: Receive,
    headers: Headers,
    script: StreamScript,
    fault: Fault | None,
    tokens_per_second: float,
    ping_interval: float,
) -> Delivery:
    """Send a 200 event stream. A `disconnect` fault returns without completing the response,
    which makes the server close the connection mid-body."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if fault is None and tokens_per_second <= 0:
        await send({"type": "http.response.body", "body": b"".join(script.frames)})
        return Delivery(len(script.frames))
    watch = ClientWatch(receive)
    delivery = Delivery()
    try:
        await _play(send, script, fault, tokens_per_second, ping_interval, watch, delivery)
    finally:
        watch.close()
    return delivery


async def _play(
    send: Send,
    script: StreamScript,
    fault: Fault | None,
    tokens_per_second: float,
    ping_interval: float,
    watch: ClientWatch,
    delivery: Delivery,
) -> None:
    loop = asyncio.get_running_loop()
    strike = strike_index(script, fault.after) if fault is not None else -1
    interval = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0
    next_at = loop.time()
    batch: list[bytes] = []

    async def flush() -> None:
        if batch:
            await _send_more(send, b"".join(batch))
            delivery.sent += len(batch)
            batch.clear()

    for index, frame in enumerate(script.frames):
        if index == strike and fault is not None:
            await flush()
            if fault.kind == "stream_error":
                await send({"type": "http.response.body", "body": OVERLOADED})
                return
            if fault.kind == "disconnect":
                return
            stall_pings = ping_interval if fault.pings else 0.0
            if not await pause(watch, send, fault.seconds, stall_pings):
                delivery.client_gone = True
                return
            next_at = loop.time()
        if interval and script.deltas[index]:
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await flush()
                if not await pause(watch, send, delay, ping_interval):
                    delivery.client_gone = True
                    return
        batch.append(frame)
    await send({"type": "http.response.body", "body": b"".join(batch)})
    delivery.sent += len(batch)


async def play_message(
    send: Send,
    receive: Receive,
    headers: Headers,
    body: bytes,
    fault: Fault | None,
    delay: float,
) -> Delivery:
    """Send a 200 JSON message after `delay` seconds (plus a stall fault's seconds); a
    `disconnect` fault sends half the body and drops the connection."""
    if fault is not None and fault.kind == "stall":
        delay += fault.seconds
    if delay > 0:
        watch = ClientWatch(receive)
        try:
            if not await watch.sleep(delay):
                return Delivery(0, client_gone=True)
        finally:
            watch.close()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if fault is not None and fault.kind == "disconnect":
        await _send_more(send, body[: len(body) // 2])
        return Delivery(0)
    await send({"type": "http.response.body", "body": body})
    return Delivery(1)
