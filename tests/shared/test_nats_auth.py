"""A real nats-server with the product's users (``strict_nats_server``): who cannot connect, what
the edge's credentials cannot do (adjust a balance, write a key record, answer admissions, report
a deposit, drain billing's consumer), and that the services' own credentials can do their part."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiapi_cli.credentials import NatsUsers
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared import billing_api
from aiapi_shared.admission import ADMIT_SUBJECT
from aiapi_shared.bus import Bus, BusUnavailable
from aiapi_shared.errors import PoisonMessage
from aiapi_shared.events.records_v1 import KEYS_BUCKET
from aiapi_shared.nats_permissions import ADMIN_USER, inbox_prefix
from aiapi_shared.settings import NatsConnectOptions
from nats.js import api
from nats.js.errors import BadRequestError
from pydantic import SecretStr

Connect = Callable[[str], Any]


def _options(users: NatsUsers, user: str, *, password: str | None = None) -> NatsConnectOptions:
    return NatsConnectOptions(
        user=user,
        password=SecretStr(password if password is not None else users.passwords[user]),
        inbox_prefix=None if user == ADMIN_USER else inbox_prefix(user),
    )


@pytest.fixture
async def connect(
    strict_nats_server: EmbeddedNats, nats_users: NatsUsers
) -> AsyncIterator[Callable[[str], Any]]:
    opened: list[Bus] = []

    async def as_user(user: str) -> Bus:
        bus = await Bus.connect(
            strict_nats_server.url, name=f"test-{user}", options=_options(nats_users, user)
        )
        opened.append(bus)
        return bus

    try:
        yield as_user
    finally:
        for bus in opened:
            await bus.close()


async def test_a_client_without_or_with_wrong_credentials_cannot_connect(
    strict_nats_server: EmbeddedNats, nats_users: NatsUsers
) -> None:
    with pytest.raises(BusUnavailable, match="refused the credentials"):
        await asyncio.wait_for(Bus.connect(strict_nats_server.url, name="anonymous"), 20)
    wrong = _options(nats_users, "accounts", password=nats_users.passwords["edge"])
    with pytest.raises(BusUnavailable, match="refused the credentials"):
        await asyncio.wait_for(Bus.connect(strict_nats_server.url, name="wrong", options=wrong), 20)


async def _billing_stand_in(admin: Bus, subjects: list[str]) -> list[str]:
    """Answers ``subjects`` as billing would (queue group and all); returns what it was asked."""
    asked: list[str] = []

    def on(subject: str) -> Callable[[bytes], Any]:
        async def handler(data: bytes) -> bytes:
            asked.append(subject)
            return b'{"ok":true}'

        return handler

    for subject in subjects:
        await admin.serve(subject, on(subject), queue="billing")
    return asked


async def test_the_edge_cannot_adjust_a_balance_but_accounts_can(connect: Connect) -> None:
    admin = await connect(ADMIN_USER)
    asked = await _billing_stand_in(admin, [billing_api.ADJUST_SUBJECT])
    edge, accounts = await connect("edge"), await connect("accounts")
    with pytest.raises(BusUnavailable):  # refused by the server: no reply, ever
        await edge.request(billing_api.ADJUST_SUBJECT, b"{}", timeout_s=1.0)
    assert asked == []
    assert await accounts.request(billing_api.ADJUST_SUBJECT, b"{}", timeout_s=5.0)
    assert asked == [billing_api.ADJUST_SUBJECT]


async def test_the_edge_cannot_write_a_key_record_but_accounts_can(connect: Connect) -> None:
    accounts = await connect("accounts")
    kv = await accounts.ensure_kv(KEYS_BUCKET)
    edge = await connect("edge")
    with pytest.raises(Exception):  # noqa: B017,PT011 (a timeout: the publish never reached the stream)
        await edge.js.publish(f"$KV.{KEYS_BUCKET}.forged", b'{"forged":true}', timeout=1.0)
    with pytest.raises(Exception):  # noqa: B017,PT011
        await edge.js.delete_stream(f"KV_{KEYS_BUCKET}", timeout=1.0)
    # a create is all the edge may do to the bucket, and a create never changes one that exists
    hostile = api.StreamConfig(
        name=f"KV_{KEYS_BUCKET}", subjects=[f"$KV.{KEYS_BUCKET}.>"], max_age=1.0
    )
    with pytest.raises(BadRequestError):
        await edge.js.add_stream(hostile)
    admin = await connect(ADMIN_USER)
    assert (await admin.js.stream_info(f"KV_{KEYS_BUCKET}")).config.max_age in (None, 0, 0.0)
    await kv.put("genuine", b"{}")
    assert sorted(await kv.keys()) == ["genuine"]
    # and what the edge may do with the bucket, it can: watch it
    seen: dict[str, bytes | None] = {}
    ready, stop = asyncio.Event(), asyncio.Event()
    watching = asyncio.create_task(
        edge.watch_kv(KEYS_BUCKET, seen.__setitem__, ready=ready, stop=stop)
    )
    await asyncio.wait_for(ready.wait(), 20)
    stop.set()
    await watching
    assert seen == {"genuine": b"{}"}


async def test_the_edge_cannot_answer_admissions_or_report_deposits(
    connect: Connect, strict_nats_server: EmbeddedNats
) -> None:
    edge, admin = await connect("edge"), await connect(ADMIN_USER)
    await edge.ensure_streams()
    answered: list[bytes] = []

    async def forged(data: bytes) -> bytes:
        answered.append(data)
        return b'{"decision":"admit"}'

    await edge.serve(ADMIT_SUBJECT, forged, queue="billing")  # the server refuses the SUB
    with pytest.raises(BusUnavailable):  # even a full-rights client finds nobody answering
        await admin.request(ADMIT_SUBJECT, b"{}", timeout_s=1.0)
    with pytest.raises(BusUnavailable):
        await edge.publish("payments.v1.deposit.confirmed", b"{}", "forged-deposit", timeout_s=1.0)
    assert answered == []
    stream = await admin.js.stream_info("PAYMENTS")
    assert stream.state.messages == 0
    assert any('Subject "rpc.billing.v1.admit"' in v for v in strict_nats_server.violations())


async def test_the_edge_cannot_take_billings_usage_messages(connect: Connect) -> None:
    edge, billing = await connect("edge"), await connect("billing")
    await billing.ensure_streams()
    await edge.publish("usage.v1.request.recorded", b"{}", "usage-1")
    stop = asyncio.Event()
    got: list[bytes] = []

    async def handler(msg: Any) -> None:
        got.append(msg.data)
        stop.set()

    # the edge trying billing's durable consumer: refused (its creation times out), so it
    # cannot fetch and ack billing's usage away
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(
            edge.consume(
                stream="USAGE",
                durable="billing-settlement",
                subject="usage.v1.request.recorded",
                handler=handler,
                stop=stop,
            ),
            timeout=3.0,
        )
    assert got == []
    consume = billing.consume(
        stream="USAGE",
        durable="billing-settlement",
        subject="usage.v1.request.recorded",
        handler=handler,
        stop=stop,
    )
    await asyncio.wait_for(consume, 20)
    assert got == [b"{}"]


async def test_a_service_sets_its_own_undecodable_messages_aside_and_the_operator_replays_them(
    connect: Connect, strict_nats_server: EmbeddedNats
) -> None:
    admin, edge, billing = (
        await connect(ADMIN_USER),
        await connect("edge"),
        await connect("billing"),
    )
    await billing.ensure_streams()  # DEADLETTER included, created with billing's rights
    await edge.publish("usage.v1.request.recorded", b"{garbled", "usage-garbled")
    stop = asyncio.Event()

    async def handler(msg: Any) -> None:
        stop.set()
        raise PoisonMessage("does not parse")

    await asyncio.wait_for(
        billing.consume(
            stream="USAGE",
            durable="billing-settlement",
            subject="usage.v1.request.recorded",
            handler=handler,
            stop=stop,
        ),
        20,
    )
    letters = await admin.dead_letters()
    assert [(x.consumer, x.data) for x in letters] == [("billing-settlement", b"{garbled")]
    await admin.replay_dead_letter(letters[0].sequence)
    assert await admin.dead_letters() == []
    assert (await admin.js.stream_info("USAGE")).state.messages == 2  # the original and the replay
    assert strict_nats_server.violations() == []
