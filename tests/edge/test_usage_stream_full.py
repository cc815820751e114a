"""A full USAGE stream refuses a publish (discard new) instead of dropping a message, and the edge's
spool keeps the event until the stream has room again: usage is never silently lost."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiapi_edge.spool import Spool
from aiapi_shared.bus import BusUnavailable

from .conftest import EdgeEnv
from .support import usage_events, wait_for

BODY = b'{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
STREAM_BYTES = 16 * 1024  # room for a few filler messages only
FILLER = "usage.v1.filler"  # inside USAGE's subjects, of no consumer's interest


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    # Stopping, the edge waits up to 30 s for its spool to be published (the pod's drain).
    return {"nats_usage_max_bytes": STREAM_BYTES, "edge_spool_drain_s": 30.0}


async def fill_usage(env: EdgeEnv) -> None:
    """Fill USAGE to the byte: it refuses a publish rather than drop its oldest message."""
    refused = 0
    for size in (1024, 64, 1):
        for n in range(STREAM_BYTES):
            try:
                await env.bus.publish(FILLER, b"f" * size, f"filler-{size}-{n}")
            except BusUnavailable:
                refused += 1
                break
    assert refused == 3


async def post(env: EdgeEnv) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            env.url + "/v1/messages",
            content=BODY,
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )


async def test_a_full_usage_stream_keeps_the_event_in_the_spool_until_room_returns(
    env: EdgeEnv,
) -> None:
    spool = env.edge.app.service.spool
    edge_bus = env.edge.app.service.bus
    publish_batch = edge_bus.publish_batch
    refusals: list[str] = []

    async def counting(messages: list[tuple[str, str, bytes]], *, timeout_s: float) -> Any:
        outcomes = await publish_batch(messages, timeout_s=timeout_s)
        refusals.extend(m[0] for m, o in zip(messages, outcomes, strict=True) if o is not None)
        return outcomes

    edge_bus.publish_batch = counting  # type: ignore[method-assign]  # the relay's, counted
    info = await env.bus.js.stream_info("USAGE")
    # The edge declared the stream from its settings: the byte limit, and refusal when full.
    assert info.config.max_bytes == STREAM_BYTES
    assert info.config.discard == "new"  # DiscardPolicy.NEW
    assert info.config.num_replicas == 1

    await fill_usage(env)
    full = await env.bus.js.stream_info("USAGE")
    assert full.state.first_seq == 1  # nothing was discarded to make room

    served = await post(env)
    assert served.status_code == 200, served.text
    request_id = served.headers["request-id"]

    async def retried() -> bool:  # the relay tried, was refused, and tried again
        return len(refusals) >= 2

    await wait_for(retried, timeout_s=10)
    assert spool.depth == 1  # the event stays spooled while the stream is full
    stored = await env.bus.js.stream_info("USAGE")
    assert stored.state.messages == full.state.messages  # not stored while full

    # Room returns (what max_age does to old messages): the spooled event is published, once.
    await env.bus.js.purge_stream("USAGE", subject=FILLER)

    async def drained() -> bool:
        return spool.depth == 0

    await wait_for(drained, timeout_s=10)
    events = await usage_events(env.bus, 1)
    assert [e.request_id for e in events] == [request_id]
    assert set(refusals) == {events[0].event_id}  # the refused event is the one published


async def test_a_stopping_edge_drains_its_spool_before_it_exits(env: EdgeEnv) -> None:
    """A pod scaled away publishes what it spooled while it stops (AIAPI_EDGE_SPOOL_DRAIN_S), not
    only on a later start that may never come."""
    spool = env.edge.app.service.spool
    await fill_usage(env)
    served = await post(env)
    assert served.status_code == 200, served.text

    async def spooled() -> bool:
        return spool.depth == 1

    await wait_for(spooled, timeout_s=5)
    stopping = asyncio.create_task(asyncio.to_thread(env.edge.stop))
    # Room returns only after the fixed 2 s the edge used to wait: the drain must outlast it.
    await asyncio.sleep(3)
    assert not stopping.done()  # still draining: the event is not published yet
    await env.bus.js.purge_stream("USAGE", subject=FILLER)
    await stopping
    events = await usage_events(env.bus, 1)
    assert [e.request_id for e in events] == [served.headers["request-id"]]
    left = Spool(env.tmp_path / "spool", max_rows=10)
    await left.open()
    try:
        assert left.depth == 0  # nothing left behind on the volume
    finally:
        await left.close()
