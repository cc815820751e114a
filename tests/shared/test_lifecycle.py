"""``lifecycle.unless_stopped``: the one "this work, unless stopped" wait of every service loop."""

from __future__ import annotations

import asyncio

import pytest
from aiapi_shared.lifecycle import unless_stopped


async def test_the_work_s_result_when_it_ends_first() -> None:
    async def work() -> str:
        return "done"

    assert await unless_stopped(work(), asyncio.Event()) == "done"


async def test_the_work_s_error_when_it_fails_first() -> None:
    async def work() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await unless_stopped(work(), asyncio.Event())


async def test_any_stop_cancels_the_work_and_gives_none() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    first, second = asyncio.Event(), asyncio.Event()

    async def work() -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # never ends by itself
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    waiting = asyncio.create_task(unless_stopped(work(), first, second))
    await started.wait()
    second.set()
    assert await waiting is None
    assert cancelled.is_set()


async def test_a_cancelled_caller_leaves_no_work_running() -> None:
    """A service stop cancels its loops: the work they waited on must go with them."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.create_task(unless_stopped(work(), asyncio.Event()))
    await started.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert cancelled.is_set()
