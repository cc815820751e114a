"""Run `python -m aiapi_payments` from the tests, and read its schema and stream as billing would."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg
from aiapi_cli.ports import free_port
from aiapi_shared.billing_api import ApiError
from aiapi_shared.bus import Bus
from aiapi_shared.events.base import Record
from aiapi_testkit.process import ServiceProcess
from pydantic import BaseModel

from tests.payments.chain import Chain
from tests.payments.wallets import ETH_ADDRESS_0, ETH_XPUB

ARGV = [sys.executable, "-m", "aiapi_payments"]
R = TypeVar("R", bound=BaseModel)


def payments_env(database_url: str, nats_url: str, **extra: str) -> dict[str, str]:
    port = free_port()
    return {
        "AIAPI_DATABASE_URL": database_url,
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_INTERNAL_PORT": str(port),
        "AIAPI_PRICE_SOURCES": "",
        "AIAPI_ETH_POLL_INTERVAL_S": "0.2",
        "AIAPI_BTC_POLL_INTERVAL_S": "0.2",
        "AIAPI_OUTBOX_INTERVAL_S": "0.2",
        **extra,
    }


async def anvil_env(database_url: str, nats_url: str, chain: Chain, **extra: str) -> dict[str, str]:
    """:func:`payments_env` following ``chain`` (anvil) from its next block, with the test wallet's
    watch-only keys."""
    return payments_env(
        database_url,
        nats_url,
        AIAPI_ETH_RPC_URL=chain.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        AIAPI_ETH_CHAIN_ID="31337",
        AIAPI_ETH_XPUB=ETH_XPUB,
        AIAPI_ETH_ADDRESS_0=ETH_ADDRESS_0,
        AIAPI_ETH_START_BLOCK=str(await chain.head() + 1),
        **extra,
    )


def health_url(env: Mapping[str, str]) -> str:
    """Readiness on the internal listener, payments' only one."""
    return f"http://127.0.0.1:{env['AIAPI_INTERNAL_PORT']}/readyz"


def start(spawn: Callable[..., ServiceProcess], env: dict[str, str]) -> ServiceProcess:
    return spawn(ARGV, env=env, health_url=health_url(env), name="payments")


async def ask(bus: Bus, subject: str, query: Record, reply: type[R]) -> R:
    """A request as accounts sends it; an ApiError fails the test with its message."""
    data = await bus.request(subject, query.model_dump_json().encode(), timeout_s=10)
    if b'"status"' in data and b'"error"' in data:
        raise AssertionError(ApiError.model_validate_json(data))
    return reply.model_validate_json(data)


async def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def wait_for_row(
    database_url: str, sql: str, *params: Any, timeout_s: float = 30.0
) -> tuple[Any, ...]:
    """The first row `sql` returns, polling until it returns one."""
    for _ in range(int(timeout_s / 0.1)):
        rows = await query(database_url, sql, *params)
        if rows:
            return rows[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no row for {sql} {params}")


async def stream_count(bus: Bus, subject: str) -> int:
    """How many messages the PAYMENTS stream holds on `subject` (what billing would consume)."""
    info = await bus.js.stream_info("PAYMENTS", subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))
