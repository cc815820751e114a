"""The consumers' fetch (``aiapi_shared.bus._fetch``) against a real nats-server: what is there at
once, the first message to come, nothing (a timeout), what an abandoned pull left behind, and
no task, timer or ``uuid4`` per message (nats-py's ``next_msg`` made all three)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.aio.subscription
import pytest
from aiapi_shared import bus as bus_module
from aiapi_shared.bus import Bus, StreamSpec
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api

SPEC = StreamSpec("FETCH", ("fetch.v1.>",))


async def _subscription(bus: Bus, durable: str) -> Any:
    await bus.ensure_stream(SPEC)
    config = api.ConsumerConfig(
        durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=30.0
    )
    return await bus.js.pull_subscribe("fetch.v1.>", durable=durable, stream="FETCH", config=config)


async def _publish(bus: Bus, *names: str) -> None:
    for name in names:
        await bus.publish(f"fetch.v1.{name}", name.encode(), f"fetch-{name}")


async def test_a_fetch_takes_what_is_there_up_to_its_batch_and_leaves_the_rest(bus: Bus) -> None:
    sub = await _subscription(bus, "there")
    await _publish(bus, "a", "b", "c", "d", "e")
    first = await bus_module._fetch(sub, 3, 5.0)
    rest = await bus_module._fetch(sub, 3, 5.0)
    assert [m.data for m in first] == [b"a", b"b", b"c"]
    assert [m.data for m in rest] == [b"d", b"e"]
    for msg in first + rest:
        await msg.ack()
    with pytest.raises(NatsTimeoutError):  # nothing left: the wait ends with the server's 408
        await asyncio.wait_for(bus_module._fetch(sub, 3, 0.3), timeout=5)


async def test_a_fetch_waits_for_the_first_message_to_come(bus: Bus) -> None:
    sub = await _subscription(bus, "waits")
    fetch = asyncio.create_task(bus_module._fetch(sub, 64, 10.0))
    await asyncio.sleep(0.3)
    assert not fetch.done()
    await _publish(bus, "late")
    msgs = await asyncio.wait_for(fetch, timeout=5)  # at once, not after the 10 s wait
    assert [m.data for m in msgs] == [b"late"]


async def test_what_an_abandoned_pull_received_is_taken_by_the_next_fetch(bus: Bus) -> None:
    sub = await _subscription(bus, "abandoned")
    waiting = asyncio.create_task(bus_module._fetch(sub, 64, 10.0))
    await asyncio.sleep(0.3)
    waiting.cancel()  # a stop or a reconnect; the pull request stays open on the server
    await _publish(bus, "kept")
    await asyncio.sleep(0.3)  # delivered to the abandoned pull, into the subscription's queue
    msgs = await asyncio.wait_for(bus_module._fetch(sub, 64, 10.0), timeout=5)
    assert [m.data for m in msgs] == [b"kept"]
    assert sub._sub._pending_size == 0  # nats-py's slow-consumer count follows what was taken


async def test_a_fetch_makes_no_task_timer_or_uuid_per_message(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = await _subscription(bus, "cheap")
    await _publish(bus, *(f"m{i}" for i in range(100)))
    made = 0
    real_uuid4 = getattr(nats.aio.subscription, "uuid4")  # noqa: B009 (not exported)

    def counting_uuid4() -> Any:
        nonlocal made
        made += 1
        return real_uuid4()

    monkeypatch.setattr(nats.aio.subscription, "uuid4", counting_uuid4)
    got = 0
    while got < 100:
        got += len(await bus_module._fetch(sub, 256, 5.0))
    assert made == 0


async def test_a_subscription_fetched_from_drains_at_once(bus: Bus) -> None:
    # nats-py's drain (a connection's close) joins the subscription's queue: every message taken
    # from it must be marked done, or the close waits out its drain timeout.
    sub = await _subscription(bus, "drains")
    await _publish(bus, "a", "b")
    taken = await bus_module._fetch(sub, 8, 5.0)
    with pytest.raises(NatsTimeoutError):
        await asyncio.wait_for(bus_module._fetch(sub, 8, 0.3), timeout=5)
    for msg in taken:
        await msg.ack()
    assert sub._sub._pending_queue._unfinished_tasks == 0
    await asyncio.wait_for(sub._sub.drain(), timeout=5)
