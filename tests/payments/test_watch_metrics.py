"""The chain watcher's last completed cycle is a metric (the chain watcher lag alert reads it)."""

from __future__ import annotations

import asyncio

import httpx
from aiapi_testkit.plugin import SpawnFn

from tests.payments.chain import Chain
from tests.payments.service import health_url, payments_env, start
from tests.payments.wallets import ETH_ADDRESS_0, ETH_XPUB


def _watched_at(env: dict[str, str]) -> dict[str, float]:
    text = httpx.get(health_url(env).replace("readyz", "metrics"), timeout=5).text
    found = {}
    for line in text.splitlines():
        if line.startswith("aiapi_payments_watch_success_timestamp_seconds{"):
            labels, value = line.split(" ")
            found[labels.split('"')[1]] = float(value)
    return found


async def test_each_completed_watch_cycle_is_exported(
    spawn: SpawnFn, chain: Chain, database_url: str, nats_url: str
) -> None:
    env = payments_env(
        database_url,
        nats_url,
        AIAPI_ETH_RPC_URL=chain.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        AIAPI_ETH_CHAIN_ID="31337",
        AIAPI_ETH_XPUB=ETH_XPUB,
        AIAPI_ETH_ADDRESS_0=ETH_ADDRESS_0,
        AIAPI_ETH_START_BLOCK=str(await chain.head() + 1),
        AIAPI_ETH_POLL_INTERVAL_S="0.2",
    )
    start(spawn, env)
    first: dict[str, float] = {}
    for _ in range(200):
        first = _watched_at(env)
        if "ethereum" in first:
            break
        await asyncio.sleep(0.05)
    assert set(first) == {"ethereum"}
    for _ in range(200):  # the next cycle moves it on
        if _watched_at(env)["ethereum"] > first["ethereum"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the watcher's timestamp did not move")
