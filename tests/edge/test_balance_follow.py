"""Each edge worker follows the balance snapshots of the accounts it serves, not the whole
bucket (BalanceMirror, aiapi_shared.bus.KvFollow): real NATS, a real edge, billing's admission
answered in the test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared.bus import Bus
from aiapi_shared.events.records_v1 import BALANCES_BUCKET, BalanceSnapshot

from .conftest import EdgeEnv
from .support import post_message, wait_for

BODY = orjson.dumps(
    {"model": "claude-opus-4-7", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
)
USD = 1_000_000_000


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    # No leases: a request's admission reads the mirror at once, not after a grant's round trip.
    return {"edge_leases": False}


async def post(env: EdgeEnv) -> httpx.Response:
    return await post_message(env.url, env.key, BODY)


async def put_snapshot(bus: Bus, account_id: str, available_usd: int, version: int) -> None:
    kv = await bus.ensure_kv(BALANCES_BUCKET)
    nano = available_usd * USD
    snapshot = BalanceSnapshot(
        account_id=account_id,
        balance=nano,
        available=nano,
        version=version,
        as_of=datetime.now(UTC),
    )
    await kv.put(account_id, snapshot.model_dump_json().encode())


def snapshot(env: EdgeEnv, account_id: str) -> BalanceSnapshot | None:
    return env.edge.app.service.balances.get(account_id)


async def live_version(env: EdgeEnv, version: int) -> None:
    """Until the edge holds the served account's snapshot of ``version`` as live."""

    async def arrived() -> bool:
        live = env.edge.app.service.balances.live(env.account_id)
        return live is not None and live.version == version

    await wait_for(arrived)


async def test_a_worker_receives_the_snapshots_of_the_account_it_serves_and_not_others(
    env: EdgeEnv,
) -> None:
    assert (await post(env)).status_code == 200  # the worker serves env.account_id from now on
    other = "acct_not_served_here"
    for version in range(1, 4):
        await put_snapshot(env.bus, other, 5, version)
        await put_snapshot(env.bus, env.account_id, 5, version)
    await live_version(env, 3)
    # The other account's puts went out before the served one's last: a watch of the bucket
    # would have delivered them by now.
    assert snapshot(env, other) is None
    follow = env.edge.app.service.balances._follow
    assert follow is not None
    assert follow.deliveries == 3  # the served account's three puts, nothing else


async def test_a_credit_to_a_followed_account_lifts_its_fast_402(env: EdgeEnv) -> None:
    await put_snapshot(env.bus, env.account_id, 0, 2)
    # The first request starts the follow; it may meet the fresh read (402) or billing (200).
    assert (await post(env)).status_code in (200, 402)
    await live_version(env, 2)
    asked = len(env.billing.requests)
    refused = await post(env)
    assert refused.status_code == 402  # the live empty balance, billing not asked
    assert len(env.billing.requests) == asked
    await put_snapshot(env.bus, env.account_id, 10, 3)  # a deposit credited
    await live_version(env, 3)
    assert (await post(env)).status_code == 200
    assert len(env.billing.requests) == asked + 1


async def test_no_fast_402_on_the_picture_of_an_account_not_followed(env: EdgeEnv) -> None:
    # What the worker's start-up read (or its disk mirror) said of the account, long ago: empty.
    empty = BalanceSnapshot(
        account_id=env.account_id, balance=0, available=0, version=1, as_of=datetime.now(UTC)
    )
    env.edge.call(
        env.edge.app.service.balances.on_change,
        env.account_id,
        empty.model_dump_json().encode(),
    )

    async def pictured() -> bool:
        return snapshot(env, env.account_id) is not None

    await wait_for(pictured)
    asked = len(env.billing.requests)
    assert (await post(env)).status_code == 200  # billing decides (it admits here)
    assert len(env.billing.requests) == asked + 1


async def test_the_follows_resume_across_a_nats_restart(
    env: EdgeEnv, nats_server: EmbeddedNats
) -> None:
    assert (await post(env)).status_code == 200
    await put_snapshot(env.bus, env.account_id, 5, 1)
    await live_version(env, 1)
    nats_server.stop()
    nats_server.start()
    await env.bus.wait_connected()

    async def put_after_restart() -> bool:
        try:
            await put_snapshot(env.bus, env.account_id, 7, 2)
        except Exception:
            return False
        return True

    await wait_for(put_after_restart, timeout_s=20, step_s=0.2)
    await live_version(env, 2)  # delivered on the renewed subscription, or read after reconnect
    await put_snapshot(env.bus, env.account_id, 9, 3)
    await live_version(env, 3)
    assert (live := env.edge.app.service.balances.live(env.account_id)) is not None
    assert live.available == 9 * USD
