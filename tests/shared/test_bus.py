"""The NATS module against a real nats-server: dedup, ack/nak/term, restarts, request/reply."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared.bus import Bus, BusUnavailable, StreamSpec
from aiapi_shared.errors import PoisonMessage, RetryableError
from aiapi_shared.events import KeyRevoked
from nats.aio.msg import Msg

SPEC = StreamSpec("TEST", ("test.v1.>",))


async def _eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _start_consumer(
    bus: Bus, handler: Callable[[Msg], Awaitable[None]], durable: str = "worker"
) -> tuple[asyncio.Task[None], asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        bus.consume(stream="TEST", durable=durable, subject="test.v1.>", handler=handler, stop=stop)
    )
    return task, stop


async def test_declarations_are_idempotent(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    await bus.ensure_stream(SPEC)
    await bus.ensure_streams()
    await bus.ensure_streams()
    kv = await bus.ensure_kv("aiapi_test")
    kv_again = await bus.ensure_kv("aiapi_test")
    await kv.put("k", b"v")
    assert (await kv_again.get("k")).value == b"v"
    info = await bus.js.stream_info("USAGE")
    assert info.config.subjects == ["usage.v1.>"]


async def test_an_event_published_twice_with_the_same_id_is_stored_once(bus: Bus) -> None:
    await bus.ensure_streams()
    event = KeyRevoked(account_id="acc_1", key_id="key_1")
    first = await bus.publish_event(event)
    second = await bus.publish_event(event)
    assert not first.duplicate
    assert second.duplicate
    info = await bus.js.stream_info("ACCOUNTS")
    assert info.state.messages == 1


async def test_handler_success_acks_each_message_once(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    seen: list[bytes] = []

    async def handler(msg: Msg) -> None:
        seen.append(msg.data)

    task, stop = _start_consumer(bus, handler)
    for i in range(5):
        await bus.publish("test.v1.thing.done", json.dumps({"i": i}).encode(), f"id-{i}")
    await _eventually(lambda: len(seen) == 5)
    stop.set()
    await task
    info = await bus.js.consumer_info("TEST", "worker")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert [json.loads(d)["i"] for d in seen] == [0, 1, 2, 3, 4]


async def test_a_handler_error_leads_to_redelivery(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    attempts: Counter[str] = Counter()

    async def handler(msg: Msg) -> None:
        attempts["x"] += 1
        if attempts["x"] < 3:
            raise RetryableError("database away", delay_s=0.05)

    task, stop = _start_consumer(bus, handler)
    await bus.publish("test.v1.thing.done", b"{}", "only")
    await _eventually(lambda: attempts["x"] == 3)
    stop.set()
    await task
    info = await bus.js.consumer_info("TEST", "worker")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0
    assert attempts["x"] == 3


async def test_a_poison_message_is_terminated_not_redelivered(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    terminated: list[bytes] = []
    handled: Counter[bytes] = Counter()

    async def on_terminated(msg: Msg) -> None:
        terminated.append(msg.data)

    await bus.client.subscribe(
        "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.TEST.worker", cb=on_terminated
    )

    async def handler(msg: Msg) -> None:
        handled[msg.data] += 1
        if msg.data == b"poison":
            raise PoisonMessage("cannot be parsed")

    task, stop = _start_consumer(bus, handler)
    await bus.publish("test.v1.thing.done", b"poison", "p")
    await bus.publish("test.v1.thing.done", b"good", "g")
    await _eventually(lambda: handled[b"good"] == 1 and len(terminated) == 1)
    stop.set()
    await task
    assert handled[b"poison"] == 1
    info = await bus.js.consumer_info("TEST", "worker")
    assert info.num_ack_pending == 0


async def test_a_consumer_survives_a_nats_restart(nats_server: EmbeddedNats) -> None:
    bus = await Bus.connect(nats_server.url, name="restart-test")
    try:
        await bus.ensure_stream(SPEC)
        seen: list[bytes] = []

        async def handler(msg: Msg) -> None:
            seen.append(msg.data)

        task, stop = _start_consumer(bus, handler)
        await bus.publish("test.v1.thing.done", b"before", "1")
        await _eventually(lambda: seen == [b"before"])

        nats_server.stop()
        await _eventually(lambda: not bus.is_connected)
        with pytest.raises(BusUnavailable):
            await bus.publish("test.v1.thing.done", b"while-down", "2", timeout_s=0.5)
        nats_server.start()

        await _eventually(lambda: bus.is_connected, timeout_s=20)
        await bus.publish("test.v1.thing.done", b"after", "3")
        await _eventually(lambda: b"after" in seen, timeout_s=20)
        stop.set()
        await task
        assert not bus.closed.is_set()
        # A publish that timed out while NATS was down may still have been sent from the client's
        # reconnect buffer: the caller must treat it as "unknown" and retry with the same id.
        assert seen[0] == b"before" and len(seen) == len(set(seen))
    finally:
        await bus.close()


async def test_request_reply_and_its_timeout(bus: Bus) -> None:
    async def double(data: bytes) -> bytes:
        return str(int(data) * 2).encode()

    await bus.serve("rpc.test.double", double, queue="doublers")
    assert await bus.request("rpc.test.double", b"21", timeout_s=2) == b"42"
    with pytest.raises(BusUnavailable):
        await bus.request("rpc.test.nobody", b"x", timeout_s=0.3)
