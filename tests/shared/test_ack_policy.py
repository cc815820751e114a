"""Why every durable consumer acknowledges each message (``AckPolicy.EXPLICIT``), measured on
the real nats-server: one ack per batch (``AckPolicy.ALL``) would save a NATS message per usage
event per consumer, but it acknowledges by stream sequence for the whole consumer, not for the
client that sends it. Billing and accounts run replicas that pull from one durable each
(docs/operations.md), and a batch may hold a message to retry later while the rest is done."""

from __future__ import annotations

import asyncio

from aiapi_shared.bus import Bus, Msg, StreamSpec
from nats.js import api

SPEC = StreamSpec("ACKS", ("acks.v1.>",))


async def _publish(bus: Bus, *names: str) -> None:
    for name in names:
        await bus.publish(f"acks.v1.{name}", name.encode(), f"acks-{name}")


async def _ack_all_consumer(bus: Bus, durable: str) -> tuple[object, object]:
    config = api.ConsumerConfig(
        durable_name=durable, ack_policy=api.AckPolicy.ALL, ack_wait=30.0, max_deliver=-1
    )
    first = await bus.js.pull_subscribe("acks.v1.>", durable=durable, stream="ACKS", config=config)
    second = await bus.js.pull_subscribe("acks.v1.>", durable=durable, stream="ACKS", config=config)
    return first, second


async def test_ack_all_from_one_replica_acknowledges_another_replicas_message_in_flight(
    bus: Bus,
) -> None:
    await bus.ensure_stream(SPEC)
    await _publish(bus, "a", "b")
    replica_1, replica_2 = await _ack_all_consumer(bus, "shared")
    [held] = await replica_1.fetch(1, timeout=5)  # type: ignore[attr-defined]
    [done] = await replica_2.fetch(1, timeout=5)  # type: ignore[attr-defined]
    assert (held.data, done.data) == (b"a", b"b")
    await done.ack_sync()
    info = await bus.js.consumer_info("ACKS", "shared")
    # Replica 1 never acknowledged "a" (it may still be in its transaction, or crash), yet it
    # counts as done: it would never be delivered again.
    assert info.num_ack_pending == 0
    assert info.ack_floor.stream_seq == 2


async def test_ack_all_of_a_later_message_cancels_the_retry_of_an_earlier_one(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    await _publish(bus, "unpriced", "priced")
    puller, _ = await _ack_all_consumer(bus, "alone")
    msgs: list[Msg] = await puller.fetch(2, timeout=5)  # type: ignore[attr-defined]
    assert [m.data for m in msgs] == [b"unpriced", b"priced"]
    await msgs[0].nak(delay=1.0)  # as billing does with an event whose model has no price yet
    await msgs[1].ack_sync()
    await asyncio.sleep(1.5)  # past the retry's delay
    info = await bus.js.consumer_info("ACKS", "alone")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0
    assert info.ack_floor.stream_seq == 2  # the retry is gone with the later ack


async def test_the_product_declares_its_consumers_with_an_ack_per_message(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    stop = asyncio.Event()

    async def handler(msgs: list[Msg]) -> list[BaseException | None]:
        return [None] * len(msgs)

    task = asyncio.create_task(
        bus.consume_batches(
            stream="ACKS", durable="batches", subject="acks.v1.>", handler=handler, stop=stop
        )
    )
    try:
        for _ in range(200):
            try:
                info = await bus.js.consumer_info("ACKS", "batches")
                break
            except Exception:  # not declared yet
                await asyncio.sleep(0.05)
        assert info.config.ack_policy == api.AckPolicy.EXPLICIT
    finally:
        stop.set()
        await task
