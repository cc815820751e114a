"""The chain watcher's last completed cycle is a metric (the chain watcher lag alert reads it)."""

from __future__ import annotations

import asyncio

import httpx
from aiapi_testkit.plugin import SpawnFn

from tests.payments.chain import Chain
from tests.payments.service import anvil_env, health_url, start


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
    env = await anvil_env(database_url, nats_url, chain)
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
