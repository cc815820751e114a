"""The loop that carries an upstream stream to the client, shared by both routes.

Chunks are handed on as they arrive (never buffered to the end). While the upstream is silent
for ``ping_interval`` the route may send a keep-alive. When the client leaves, the loop keeps
reading the upstream, for at most ``drain_s``, until the route's meter has the final usage: the
client pays for what the upstream generated, never zero and never an estimate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from aiapi_edge.asgi import Receive
from aiapi_edge.http_client import HttpClientError
from aiapi_edge.upstream import UpstreamAnswer

log = logging.getLogger("aiapi.edge.streaming")

PumpResult = Literal["ended", "upstream_failed", "drain_expired", "cut"]


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Deadline:
    """When the read in progress must give up: ``ping_interval`` after the upstream's last
    bytes, or (the client gone) the drain deadline.

    One timer per stream, moved lazily: a chunk only notes the time, and the timer, when it
    fires early, sets itself again for the new due time. An ``asyncio.timeout`` around every
    read cost a timer and a scope per chunk (7% of the edge's CPU at 1,000 long streams). When
    due during a read, the timer cancels the pump's task as ``asyncio.timeout`` would; the read
    (``read_chunk``) is safe to cancel: it takes bytes only after its wait ends.
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


async def pump(
    answer: UpstreamAnswer,
    receive: Receive,
    *,
    on_chunk: Callable[[bytes, bool], Awaitable[bool]],
    on_idle: Callable[[], Awaitable[None]],
    is_complete: Callable[[], bool],
    ping_interval: float,
    drain_s: float,
) -> tuple[PumpResult, bool]:
    """Read the upstream to its end; returns how it ended and whether the client left.

    ``on_chunk(chunk, client_present)`` meters and (if the client is there) forwards a chunk;
    it returns True to stop reading the upstream (``"cut"``: a hold that could not be extended).
    """
    loop = asyncio.get_running_loop()
    disconnect = asyncio.ensure_future(_until_disconnect(receive))
    deadline = _Deadline(loop, ping_interval)

    def client_left(_: object) -> None:
        # The client left during a long upstream silence: end the wait now so the drain
        # deadline (not the ping interval) bounds what follows.
        deadline.cut(drain_s)

    disconnect.add_done_callback(client_left)
    try:
        while True:
            if deadline.drain_at is None and disconnect.done():
                deadline.cut(drain_s)
            if deadline.drain_at is not None and (
                is_complete() or loop.time() >= deadline.drain_at
            ):
                return ("ended" if is_complete() else "drain_expired"), True
            deadline.rearm()
            deadline.reading = True
            try:
                chunk = await answer.read_chunk()
            except asyncio.CancelledError:
                deadline.reading = False
                if not deadline.ours():
                    raise
                if deadline.drain_at is None and not disconnect.done():
                    await on_idle()  # the upstream was silent for ping_interval
                    deadline.last = loop.time()
                continue
            except HttpClientError as exc:  # the connection failed, or the read timeout
                log.warning("upstream stream failed: %s", type(exc).__name__)
                return "upstream_failed", deadline.drain_at is not None or disconnect.done()
            except OSError as exc:
                log.warning("upstream stream failed: %s", type(exc).__name__)
                return "upstream_failed", deadline.drain_at is not None or disconnect.done()
            finally:
                deadline.reading = False
            deadline.last = loop.time()
            left = deadline.drain_at is not None or disconnect.done()
            if not chunk:
                return "ended", left
            if await on_chunk(chunk, not left):
                return "cut", left
    finally:
        deadline.close()
        disconnect.remove_done_callback(client_left)
        disconnect.cancel()
