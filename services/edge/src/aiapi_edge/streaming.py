"""The loop that carries an upstream stream to the client, shared by both routes.

Chunks are handed on as they arrive (never buffered to the end), metered and written to the
client from the upstream connection's ``data_received`` (:class:`_Feed`), without waking a task
per chunk; a client slower than the upstream stops the upstream's reading until it catches up. While the upstream is silent
for ``ping_interval`` the route may send a keep-alive. When the client leaves, the loop keeps
reading the upstream, for at most ``drain_s``, until the route's meter has the final usage: the
client pays for what the upstream generated, never zero and never an estimate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from aiapi_edge.asgi import Receive, StreamBody
from aiapi_edge.http_client import HttpClientError, ReadTimeout
from aiapi_edge.upstream import UpstreamAnswer

log = logging.getLogger("aiapi.edge.streaming")

PumpResult = Literal["ended", "upstream_failed", "drain_expired", "cut"]


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Deadline:
    """When the wait for the upstream must give up: ``ping_interval`` (or the read timeout)
    after the upstream's last bytes, or (the client gone) the drain deadline.

    One timer per stream, moved lazily: a chunk only notes the time, and the timer, when it
    fires early, sets itself again for the new due time. An ``asyncio.timeout`` around every
    read cost a timer and a scope per chunk (7% of the edge's CPU at 1,000 long streams). When
    due during the pump's wait, the timer cancels the pump's task as ``asyncio.timeout`` would;
    the wait is safe to cancel: the bytes are taken by the feed, not by the waiting task.
    """

    __slots__ = ("_base", "_handle", "_interval", "_loop", "_task", "drain_at", "expired", "last",
                 "reading")  # fmt: skip

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = loop
        self._interval = interval
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._base = task.cancelling()  # cancellations requested before ours
        self.last = loop.time()  # the upstream's last bytes
        self.drain_at: float | None = None  # set once the client left
        self.reading = False
        self.expired = False
        self._handle: asyncio.TimerHandle | None = loop.call_at(self.due(), self._fire)

    def due(self) -> float:
        return self.drain_at if self.drain_at is not None else self.last + self._interval

    def _fire(self) -> None:
        now = self._loop.time()
        due = self.due()
        if now < due:
            self._handle = self._loop.call_at(due, self._fire)
            return
        self._handle = None
        if self.reading and not self.expired:
            self.expired = True
            self._task.cancel()
        else:  # busy writing: the next read waits at most one more interval (as it always did)
            self._handle = self._loop.call_at(now + self._interval, self._fire)

    def cut(self, drain_s: float) -> None:
        """The client left: the drain deadline takes over, and the read in progress ends now."""
        if self.drain_at is None:
            self.drain_at = self._loop.time() + drain_s
        if self._handle is not None:  # set for the ping, maybe later than the drain deadline
            self._handle.cancel()
            self._handle = None
        self.rearm()
        if self.reading and not self.expired:
            self.expired = True
            self._task.cancel()

    def rearm(self) -> None:
        if self._handle is None:
            self._handle = self._loop.call_at(max(self.due(), self._loop.time()), self._fire)

    def ours(self) -> bool:
        """After a CancelledError in the read: True when the cancellation was this deadline's
        (a timeout), False when someone else cancelled the task too (propagate it)."""
        if not self.expired:
            return False
        self.expired = False
        return self._task.uncancel() <= self._base

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Feed:
    """The upstream's body as it arrives (the sink of :meth:`.http_client.HttpResponse.stream_to`):
    each read is metered and written to the client right there, in the upstream connection's
    ``data_received``. The pump's task is woken only when it has something to do: the answer
    ended or failed, the client's buffer is full, the stream was cut, ``on_chunk`` raised, or
    (the client gone) the meter may have completed."""

    __slots__ = ("_disconnect", "_loop", "_on_chunk", "_response", "blocked", "body", "cut",
                 "deadline", "ended", "error", "waiter")  # fmt: skip

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        answer: UpstreamAnswer,
        body: StreamBody,
        deadline: _Deadline,
        disconnect: asyncio.Future[None],
        on_chunk: Callable[[bytes, bool], bool],
    ) -> None:
        self._loop = loop
        self._response = answer.response
        self._disconnect = disconnect
        self._on_chunk = on_chunk
        self.body = body
        self.deadline = deadline
        self.ended = False  # the answer ended or failed (``read_chunk`` says which)
        self.blocked = False  # upstream reading paused until the client's buffer drains
        self.cut = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None

    def __call__(self, data: bytes) -> None:
        if self.cut or self.error is not None:
            return  # the pump is ending the stream: nothing more is read
        if not data:
            self.ended = True
            self.wake()
            return
        deadline = self.deadline
        deadline.last = self._loop.time()
        left = deadline.drain_at is not None or self._disconnect.done()
        try:
            self.cut = self._on_chunk(data, not left)
        except Exception as exc:  # noqa: BLE001 (raised again in the pump's task)
            self.error = exc
        if self.cut or self.error is not None:
            self._response.pause_reading()
            self.wake()
        elif self.body.blocked:
            self._response.pause_reading()
            self.blocked = True
            self.wake()
        elif left:
            self.wake()  # the drain may be over

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def pump(
    answer: UpstreamAnswer,
    receive: Receive,
    body: StreamBody,
    *,
    on_chunk: Callable[[bytes, bool], bool],
    on_idle: Callable[[], Awaitable[None]],
    is_complete: Callable[[], bool],
    ping_interval: float,
    drain_s: float,
) -> tuple[PumpResult, bool]:
    """Read the upstream to its end; returns how it ended and whether the client left.

    ``on_chunk(chunk, client_present)`` meters a chunk and (if the client is there) writes what
    the client gets to ``body``; it runs in the upstream connection's ``data_received``, so it
    is synchronous. It returns True to stop reading the upstream (``"cut"``: a hold that could
    not be extended). While ``body`` is blocked (a slow client) the upstream is not read.
    """
    loop = asyncio.get_running_loop()
    disconnect = asyncio.ensure_future(_until_disconnect(receive))
    # The upstream's silence ends the wait for it after ``ping_interval`` (a keep-alive) or,
    # when shorter, the client's read timeout (a failure), as a read with that timeout would.
    read_timeout = answer.response.read_timeout_s
    deadline = _Deadline(loop, min(ping_interval, read_timeout))
    feed = _Feed(loop, answer, body, deadline, disconnect, on_chunk)

    def client_left(_: object) -> None:
        # The client left during a long upstream silence: end the wait now so the drain
        # deadline (not the ping interval) bounds what follows.
        deadline.cut(drain_s)

    disconnect.add_done_callback(client_left)
    try:
        answer.response.stream_to(feed)
        while True:
            if deadline.drain_at is None and disconnect.done():
                deadline.cut(drain_s)
            drain_at = deadline.drain_at
            left = drain_at is not None
            if drain_at is not None and (is_complete() or loop.time() >= drain_at):
                return ("ended" if is_complete() else "drain_expired"), True
            if feed.error is not None:
                raise feed.error
            if feed.cut:
                return "cut", left
            if feed.ended:
                try:
                    await answer.read_chunk()  # b"" at once, or the failure
                except (HttpClientError, OSError) as exc:
                    log.warning("upstream stream failed: %s", type(exc).__name__)
                    return "upstream_failed", left or disconnect.done()
                return "ended", left or disconnect.done()
            if feed.blocked:
                await body.flush()  # until the client's buffer drains (or the client leaves)
                feed.blocked = False
                answer.response.resume_reading()
                continue
            deadline.rearm()
            deadline.reading = True
            feed.waiter = loop.create_future()
            try:
                await feed.waiter
            except asyncio.CancelledError:
                deadline.reading = False
                if not deadline.ours():
                    raise
                if deadline.drain_at is None and not disconnect.done():
                    if read_timeout <= ping_interval:
                        log.warning("upstream stream failed: %s", ReadTimeout.__name__)
                        return "upstream_failed", False
                    # The upstream was silent for ping_interval. Its bytes wait while the
                    # keep-alive is written: one arriving now is not written before it.
                    answer.response.pause_reading()
                    try:
                        await on_idle()
                    finally:
                        answer.response.resume_reading()
                    deadline.last = loop.time()
            finally:
                deadline.reading = False
                feed.waiter = None
    finally:
        answer.response.stream_to(None)
        deadline.close()
        disconnect.remove_done_callback(client_left)
        disconnect.cancel()
