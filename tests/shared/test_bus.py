"""The NATS module against a real nats-server: dedup, ack/nak/term, dead letters, restarts,
request/reply."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared import bus as bus_module
from aiapi_shared import deadletter
from aiapi_shared.billing_api import AccountQuery, ApiError
from aiapi_shared.bus import (
    Bus,
    BusError,
    BusUnavailable,
    ErrorReply,
    InvalidReply,
    Msg,
    NoResponders,
    StreamSpec,
    decode_event,
)
from aiapi_shared.errors import PoisonMessage, RetryableError
from aiapi_shared.events import KeyRevoked
from aiapi_shared.redelivery import DeadLetter
from pydantic import BaseModel

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


async def test_a_fetch_that_never_returns_is_replaced(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the chaos run (bench/chaos.py --seed 2 --faults nats,spool_full): across NATS
    restarts, nats-py's fetch sometimes never returned (its own timeout did not fire), so a
    consumer stopped for good while its messages piled up on the server (billing's settlement:
    usage never billed). Here the first subscription's fetch hangs forever, as it did there."""
    monkeypatch.setattr(bus_module, "FETCH_BOUND_S", 0.5)
    await bus.ensure_stream(SPEC)
    real_fetch = bus_module._fetch
    subscriptions: list[object] = []

    async def fetch(sub: object, batch: int, wait_s: float) -> list[Msg]:
        if sub not in subscriptions:
            subscriptions.append(sub)
        if sub is subscriptions[0]:
            await asyncio.Event().wait()  # the first subscription's fetch hangs forever
        return await real_fetch(sub, batch, wait_s)

    monkeypatch.setattr(bus_module, "_fetch", fetch)
    seen: list[bytes] = []

    async def handler(msg: Msg) -> None:
        seen.append(msg.data)

    task, stop = _start_consumer(bus, handler)
    await bus.publish("test.v1.thing.done", b"settle me", "1")
    await _eventually(lambda: seen == [b"settle me"])
    stop.set()
    await task
    assert len(subscriptions) == 2


async def test_request_reply_and_its_timeout(bus: Bus) -> None:
    async def double(data: bytes) -> bytes:
        return str(int(data) * 2).encode()

    await bus.serve("rpc.test.double", double, queue="doublers")
    assert await bus.request("rpc.test.double", b"21", timeout_s=2) == b"42"
    with pytest.raises(BusUnavailable):
        await bus.request("rpc.test.nobody", b"x", timeout_s=0.3)


# -- redelivery and dead letters (issue 14) -----------------------------------------------------


class _Deposit(BaseModel):
    deposit_id: str
    amount: int


def _redeliveries(bus: Bus, consumer: str) -> float:
    value = bus.metrics.registry.get_sample_value(
        "aiapi_consumer_retries_total", {"consumer": consumer}
    )
    return value or 0.0


async def test_a_handler_raising_a_validation_error_is_redelivered_not_dropped(bus: Bus) -> None:
    """A bug in a handler (here pydantic refusing a document the handler built wrongly) must not
    lose the message: it comes back, and the retry counter says something is wrong."""
    await bus.ensure_stream(SPEC)
    deliveries: Counter[bytes] = Counter()
    credited: list[bytes] = []

    async def handler(msg: Msg) -> None:
        deliveries[msg.data] += 1
        if deliveries[msg.data] == 1:
            _Deposit.model_validate({"deposit_id": "d1", "amount": "not a number"})
        credited.append(msg.data)

    task, stop = _start_consumer(bus, handler)
    await bus.publish("test.v1.deposit.confirmed", b'{"deposit":"d1"}', "d1")
    await _eventually(lambda: credited == [b'{"deposit":"d1"}'])
    stop.set()
    await task
    assert deliveries[b'{"deposit":"d1"}'] == 2
    assert _redeliveries(bus, "worker") == 1
    assert await bus.dead_letters() == []


async def test_an_undecodable_message_is_set_aside_and_replayed(
    bus: Bus, nats_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await bus.ensure_stream(SPEC)
    upgraded = False
    decoded: list[str] = []

    async def handler(msg: Msg) -> None:
        if upgraded:  # the consumer learnt to read it (a fix deployed)
            decoded.append(msg.data.decode())
            return
        decoded.append(decode_event(KeyRevoked, msg.data).key_id)

    task, stop = _start_consumer(bus, handler)
    await bus.publish("test.v1.key.revoked", b"{not json", "garbled-1")
    good = KeyRevoked(account_id="acc_1", key_id="key_1")
    await bus.publish("test.v1.key.revoked", good.to_json(), good.event_id)
    await _eventually(lambda: decoded == ["key_1"])
    letters: list[DeadLetter] = []

    async def set_aside() -> None:
        letters[:] = await bus.dead_letters()

    for _ in range(200):
        await set_aside()
        if letters:
            break
        await asyncio.sleep(0.05)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.data == b"{not json"
    assert (letter.subject, letter.consumer, letter.stream) == (
        "test.v1.key.revoked",
        "worker",
        "TEST",
    )
    assert letter.stream_sequence == 1 and letter.msg_id == "garbled-1"
    assert "KeyRevoked does not parse" in letter.reason
    assert (
        bus.metrics.registry.get_sample_value(
            "aiapi_consumer_dead_lettered_total", {"consumer": "worker"}
        )
        == 1
    )
    info = await bus.js.consumer_info("TEST", "worker")
    assert info.num_ack_pending == 0  # terminated: not redelivered

    monkeypatch.setenv("AIAPI_NATS_URL", nats_url)
    assert await deadletter.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert f"#{letter.sequence} " in listed and "consumer=worker" in listed
    upgraded = True
    assert await deadletter.main(["replay", str(letter.sequence)]) == 0
    await _eventually(lambda: decoded == ["key_1", "{not json"])
    assert await bus.dead_letters() == []
    assert await deadletter.main(["replay", str(letter.sequence)]) == 1  # gone: nothing twice
    stop.set()
    await task


async def test_a_batch_consumer_redelivers_failures_and_sets_poison_aside(bus: Bus) -> None:
    await bus.ensure_stream(SPEC)
    seen: Counter[bytes] = Counter()
    done: list[bytes] = []

    async def handler(msgs: list[Msg]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for msg in msgs:
            seen[msg.data] += 1
            if msg.data == b"poison":
                outcomes.append(PoisonMessage("does not parse"))
            elif msg.data == b"buggy" and seen[msg.data] == 1:
                outcomes.append(ValueError("a bug on the first try"))
            else:
                outcomes.append(None)
                done.append(msg.data)
        return outcomes

    stop = asyncio.Event()
    task = asyncio.create_task(
        bus.consume_batches(
            stream="TEST", durable="batcher", subject="test.v1.>", handler=handler, stop=stop
        )
    )
    for i, data in enumerate((b"fine", b"poison", b"buggy")):
        await bus.publish("test.v1.thing.done", data, f"b-{i}")
    await _eventually(lambda: sorted(done) == [b"buggy", b"fine"])
    await _eventually(lambda: bus.metrics.registry.get_sample_value(
        "aiapi_consumer_dead_lettered_total", {"consumer": "batcher"}) == 1)  # fmt: skip
    stop.set()
    await task
    assert seen == Counter({b"fine": 1, b"poison": 1, b"buggy": 2})
    assert _redeliveries(bus, "batcher") == 1
    assert [letter.data for letter in await bus.dead_letters()] == [b"poison"]


# -- request/reply: Bus.call and its one error family ------------------------------------------


async def test_call_decodes_the_reply_and_names_each_failure(bus: Bus) -> None:
    answers = {
        b"ok": AccountQuery(account_id="acc_1").model_dump_json().encode(),
        b"refused": ApiError(error="not_found", message="no such account", status=404)
        .model_dump_json()
        .encode(),
        b"crashed": b'{"error":"internal"}',
        b"garbled": b"{nope",
        b"other": b'{"something":"else"}',
    }

    async def answer(data: bytes) -> bytes:
        if data == b"slow":
            await asyncio.sleep(2)
        return answers.get(data, b"")

    await bus.serve("rpc.test.call", answer, queue="callers", concurrency=4)
    reply = await bus.call("rpc.test.call", b"ok", AccountQuery, timeout_s=5)
    assert reply == AccountQuery(account_id="acc_1")
    with pytest.raises(ErrorReply) as refused:
        await bus.call("rpc.test.call", b"refused", AccountQuery, timeout_s=5)
    assert (refused.value.error.status, refused.value.error.error) == (404, "not_found")
    for request, detail in (
        (b"crashed", "failed to answer"),
        (b"garbled", "sent an unreadable answer"),
        (b"other", "sent an unexpected answer"),
    ):
        with pytest.raises(InvalidReply) as invalid:
            await bus.call("rpc.test.call", request, AccountQuery, timeout_s=5)
        assert invalid.value.detail == detail

    def strict(raw: bytes) -> str:
        if not raw.startswith(b"{"):
            raise ValueError("not an object")
        return raw.decode()

    assert await bus.call("rpc.test.call", b"ok", strict, timeout_s=5) == answers[b"ok"].decode()
    with pytest.raises(InvalidReply):
        await bus.call("rpc.test.call", b"unknown", strict, timeout_s=5)
    with pytest.raises(NoResponders):
        await bus.call("rpc.test.nobody", b"x", AccountQuery, timeout_s=2)
    with pytest.raises(BusUnavailable) as late:
        await bus.call("rpc.test.call", b"slow", AccountQuery, timeout_s=0.2)
    assert not isinstance(late.value, NoResponders)
    assert all(
        issubclass(error, BusError)
        for error in (BusUnavailable, NoResponders, InvalidReply, ErrorReply)
    )


async def test_a_stop_ends_a_consumer_whose_fetch_is_still_waiting(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An idle consumer long-polls (one pull request per wait); a stop cancels the fetch instead
    # of waiting it out, here an hour, so a service still stops at once.
    monkeypatch.setattr(bus_module, "FETCH_WAIT_FIRST_S", 3600.0)
    monkeypatch.setattr(bus_module, "FETCH_WAIT_S", 3600.0)
    await bus.ensure_stream(SPEC)
    got: list[bytes] = []

    async def handler(msg: Msg) -> None:
        got.append(msg.data)

    task, stop = _start_consumer(bus, handler, durable="long-poller")
    await bus.publish("test.v1.thing.done", b"one", "lp-1")
    await _eventually(lambda: got == [b"one"])  # answered within the long poll, not after it
    stop.set()
    await asyncio.wait_for(task, timeout=30)  # a bound against a hang: the fetch waits an hour
    assert task.done() and task.exception() is None


async def test_an_idle_consumer_resumes_after_a_nats_restart_however_long_its_poll(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An idle consumer's poll grows (here up to an hour); its pull request lives on the server,
    # which loses it when it restarts. A reconnect cancels the waiting fetch, looks the consumer
    # up again and polls from the short wait, and a request lost anyway costs only the short
    # wait it was sent with: the consumer never waits out the long poll, nor its bound.
    monkeypatch.setattr(bus_module, "FETCH_WAIT_S", 3600.0)
    bus = await Bus.connect(nats_server.url, name="long-poll-restart-test")
    try:
        await bus.ensure_stream(SPEC)
        seen: list[bytes] = []

        async def handler(msg: Msg) -> None:
            seen.append(msg.data)

        task, stop = _start_consumer(bus, handler, durable="long-poll-restart")
        await bus.publish("test.v1.thing.done", b"before", "lpr-1")
        await _eventually(lambda: seen == [b"before"])
        await asyncio.sleep(3.5)  # idle: the polls grow (1, 2, then 4 s waiting on the server)
        await _restart(nats_server, bus)
        await bus.publish("test.v1.thing.done", b"after", "lpr-2")
        await _eventually(lambda: b"after" in seen, timeout_s=20)
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    finally:
        await bus.close()


async def _restart(nats_server: EmbeddedNats, bus: Bus) -> None:
    nats_server.stop()
    await _eventually(lambda: not bus.is_connected)
    nats_server.start()
    await _eventually(lambda: bus.is_connected, timeout_s=20)


async def test_a_kv_watch_has_no_polling_task_and_follows_a_large_bucket(bus: Bus) -> None:
    # nats-py runs a task per watch that wakes four times a second to send deferred flow-control
    # answers; a watch's callback subscription never defers one, so the bus ends that task. The
    # bucket here is larger than the server's flow-control window: had the answers stopped, the
    # server would stall the delivery and the watch would not see every entry.
    kv = await bus.ensure_kv("aiapi_test_big")
    value = b"x" * 32 * 1024
    for n in range(300):
        await kv.put(f"k{n}", value + str(n).encode())
    seen: dict[str, bytes | None] = {}
    ready, stop = asyncio.Event(), asyncio.Event()
    watching = asyncio.create_task(bus.watch_kv("aiapi_test_big", seen.__setitem__, ready=ready, stop=stop))  # fmt: skip
    await asyncio.wait_for(ready.wait(), timeout=30)
    assert len(seen) == 300 and seen["k299"] == value + b"299"
    polls = [
        t
        for t in asyncio.all_tasks()
        if "check_flow_control_response" in getattr(t.get_coro(), "__qualname__", "")
    ]
    assert polls == []
    for n in range(300):
        await kv.put(f"k{n}", value + b"changed")
    await kv.delete("k7")
    await _eventually(lambda: seen.get("k7", b"") is None and seen["k299"] == value + b"changed")
    stop.set()
    await asyncio.wait_for(watching, timeout=10)
