"""Bus.publish_batch against a real nats-server: the acks of a batch come to one reply
subscription, each message is told apart (stored, refused, no ack), a retry is a duplicate."""

from __future__ import annotations

import asyncio

from aiapi_shared.bus import Bus, BusUnavailable, Msg, StreamSpec
from nats.js import api

SPEC = StreamSpec("TEST", ("test.v1.>",))


def _batch(*ids: str, subject: str = "test.v1.thing.done") -> list[tuple[str, str, bytes]]:
    return [(msg_id, subject, msg_id.encode()) for msg_id in ids]


async def test_a_batch_is_stored_once_and_published_again_is_all_duplicates(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    messages = _batch("a", "b", "c", "d")
    assert await bus.publish_batch(messages, timeout_s=5.0) == [None] * 4
    assert await bus.publish_batch(messages, timeout_s=5.0) == [None] * 4  # a retry
    assert (await bus.js.stream_info("TEST")).state.messages == 4
    assert await bus.publish_batch([], timeout_s=5.0) == []


async def test_a_message_without_an_ack_fails_alone_and_a_late_ack_is_ignored(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    swallowed: list[Msg] = []

    async def swallow(msg: Msg) -> None:  # takes the message, never answers (an ack lost)
        swallowed.append(msg)

    await bus.client.subscribe("hole.v1.x", cb=swallow)
    lost = _batch("lost", subject="hole.v1.x")
    outcomes = await bus.publish_batch([*_batch("one"), *lost, *_batch("two")], timeout_s=0.5)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], BusUnavailable)
    # The ack comes after the batch gave up: nothing is waiting for it any more.
    assert len(swallowed) == 1
    await bus.client.publish(swallowed[0].reply, b'{"stream":"TEST","seq":99}')
    await asyncio.sleep(0.1)
    assert await bus.publish_batch(_batch("three"), timeout_s=5.0) == [None]
    assert (await bus.js.stream_info("TEST")).state.messages == 3


async def test_a_refused_message_and_one_no_stream_takes_fail_alone(bus: Bus) -> None:
    await bus.js.add_stream(
        api.StreamConfig(
            name="SMALL", subjects=["small.v1.>"], max_msgs=2, discard=api.DiscardPolicy.NEW
        )
    )
    outcomes = await bus.publish_batch(
        [*_batch("s1", "s2", "s3", subject="small.v1.x"), *_batch("x", subject="nowhere.v1.x")],
        timeout_s=5.0,
    )
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], BusUnavailable) and "refused" in str(outcomes[2])
    assert isinstance(outcomes[3], BusUnavailable) and "no stream" in str(outcomes[3])
    assert (await bus.js.stream_info("SMALL")).state.messages == 2


async def test_a_batch_before_the_first_connection_fails_without_waiting() -> None:
    bus = Bus.connecting("nats://127.0.0.1:1", name="never-connected")
    try:
        outcomes = await bus.publish_batch(_batch("a", "b"), timeout_s=30.0)
        assert [type(o) for o in outcomes] == [BusUnavailable, BusUnavailable]
    finally:
        await bus.close()
