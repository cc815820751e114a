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
    drain_deadline: float | None = None
    waiting: list[asyncio.Timeout] = []  # the read in progress, if any

    def cut_wait(_: object) -> None:
        # The client left during a long upstream silence: end the wait now so the drain
        # deadline (not the ping interval) bounds what follows.
        for scope in waiting:
            scope.reschedule(loop.time())

    disconnect.add_done_callback(cut_wait)
    try:
        while True:
            if drain_deadline is None and disconnect.done():
                drain_deadline = loop.time() + drain_s
            if drain_deadline is not None and (is_complete() or loop.time() >= drain_deadline):
                return ("ended" if is_complete() else "drain_expired"), True
            wait = ping_interval if drain_deadline is None else drain_deadline - loop.time()
            try:
                async with asyncio.timeout(max(wait, 0.001)) as scope:
                    waiting.append(scope)
                    try:
                        chunk = await answer.read_chunk()
                    finally:
                        waiting.clear()
            except HttpClientError as exc:  # the connection failed, or the read timeout
                log.warning("upstream stream failed: %s", type(exc).__name__)
                return "upstream_failed", drain_deadline is not None or disconnect.done()
            except TimeoutError:  # ours (the upstream was silent); before OSError, its base
                if drain_deadline is None and not disconnect.done():
                    await on_idle()
                continue
            except OSError as exc:
                log.warning("upstream stream failed: %s", type(exc).__name__)
                return "upstream_failed", drain_deadline is not None or disconnect.done()
            if not chunk:
                return "ended", drain_deadline is not None or disconnect.done()
            if await on_chunk(chunk, drain_deadline is None and not disconnect.done()):
                return "cut", drain_deadline is not None or disconnect.done()
    finally:
        disconnect.remove_done_callback(cut_wait)
        disconnect.cancel()
