"""A pull consumer outlives the server's status errors while a cluster node is lost (the consumer's
leader moving answers a fetch with 503): it fetches again instead of ending its loop, which left
a billing replica running without settling anything (found by tests/e2e/test_cluster.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiapi_shared import bus as bus_module
from aiapi_shared.bus import Bus, StreamSpec
from nats.aio.msg import Msg
from nats.js.errors import ServiceUnavailableError

SPEC = StreamSpec("FAILOVER", ("failover.v1.>",))


async def test_a_fetch_answered_503_is_retried_and_the_consumer_goes_on(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bus.ensure_stream(SPEC)
    fetch = bus_module._fetch
    refused = 0

    async def fetch_or_refuse(sub: Any, batch: int, wait_s: float) -> list[Msg]:
        nonlocal refused
        if refused < 2:  # as the server answers while the consumer's leader moves
            refused += 1
            raise ServiceUnavailableError(code=503, err_code=10008, description="leader gone")
        return await fetch(sub, batch, wait_s)

    monkeypatch.setattr(bus_module, "_fetch", fetch_or_refuse)
    seen: list[bytes] = []

    async def handler(msg: Msg) -> None:
        seen.append(msg.data)

    stop = asyncio.Event()
    task = asyncio.create_task(
        bus.consume(
            stream="FAILOVER", durable="w", subject="failover.v1.>", handler=handler, stop=stop
        )
    )
    await bus.publish("failover.v1.x", b"settle me", "m1")
    for _ in range(300):
        if seen or task.done():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task  # ended by stop, not by the refused fetches
    assert refused == 2
    assert seen == [b"settle me"]
