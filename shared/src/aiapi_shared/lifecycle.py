"""What a service process promises the runner (pure: a protocol, an exception, exit codes).

The runner (:mod:`aiapi_shared.runner`) owns the process: signals, start-up and shutdown order,
the listeners and the exit status. A service only starts, stops and says whether it can serve.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from enum import IntEnum
from typing import Protocol, TypeVar

T = TypeVar("T")


class ExitCode(IntEnum):
    """The process exit status every aiapi service uses (docs/operations.md)."""

    STOPPED = 0  # a graceful stop (SIGTERM or SIGINT)
    FAILED = 1  # failed while running: NATS closed for good, a task died
    REFUSED = 2  # a configuration it will not run with: invalid settings, NATS credentials refused
    START_FAILED = 3  # start-up failed otherwise (a dependency unreachable, a port taken)


class StartupRefused(Exception):
    """Settings or configuration the service will not run with; the message names settings,
    never their values."""


class ClosingBus(Protocol):
    """What the runner watches of a service's NATS connection (``aiapi_shared.bus.Bus``):
    ``closed`` is set when it closed for good, ``refused`` when NATS refuses the service's
    credentials (a configuration error: retrying cannot help)."""

    @property
    def closed(self) -> asyncio.Event: ...

    @property
    def refused(self) -> asyncio.Event: ...


class Service(Protocol):
    """A service's lifecycle as the runner drives it.

    ``start`` raises :class:`StartupRefused` (exit 2) or anything else (exit 3); ``stop`` is
    called once whatever happened, also after a failed start. ``failed`` is set by the service
    when it can no longer run (exit 1). ``bus`` is watched after start: its closing for good
    (not during ``stop``) also means exit 1.
    """

    failed: asyncio.Event

    @property
    def bus(self) -> ClosingBus | None: ...

    async def start(self) -> object: ...

    async def stop(self) -> None: ...

    async def ready(self) -> bool:
        """Whether it can serve now (readiness); may touch NATS or PostgreSQL."""
        ...

    def render_metrics(self) -> bytes | Awaitable[bytes]:
        """Prometheus text exposition of the process's metrics (empty: none kept); awaitable
        when they must be gathered (an edge supervisor asks its workers)."""
        ...


async def unless_stopped(work: Awaitable[T], *stops: asyncio.Event) -> T | None:
    """``work``'s result (or its error), or None (``work`` cancelled) as soon as one of
    ``stops`` is set. If the caller itself is cancelled, ``work`` is cancelled too (never left
    running on its own)."""
    task = asyncio.ensure_future(work)
    stopped = [asyncio.ensure_future(stop.wait()) for stop in stops]
    finished = False
    try:
        await asyncio.wait((task, *stopped), return_when=asyncio.FIRST_COMPLETED)
        finished = task.done()
    finally:
        for wait in stopped:
            wait.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return task.result() if finished else None
