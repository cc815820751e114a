"""Billing test fixtures: a migrated database, a running billing service, helpers to drive it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiapi_billing.auditor import audit
from aiapi_billing.service import SCHEMA, Service, prepare_database
from aiapi_billing.settings import BillingSettings
from aiapi_cli.ports import free_port
from aiapi_shared.admission import ADMIT_SUBJECT, AdmissionReply, AdmissionRequest
from aiapi_shared.billing_api import ADJUST_SUBJECT, AdjustCommand, AdjustReply
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.events import Usage, UsageRecorded, new_event_id
from aiapi_shared.money import parse_usd


async def eventually(check: Callable[[], Any], timeout_s: float = 15.0) -> None:
    """Wait (bounded) until ``check()`` (sync or async) is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def billing_settings(database_url: str, nats_url: str, **overrides: Any) -> BillingSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "nats_url": nats_url,
        "internal_port": free_port("127.0.0.1"),
        "hold_sweep_interval_s": 0.2,
        **overrides,
    }
    return BillingSettings(**values)


def billing_env(database_url: str, nats_url: str, port: int, **extra: str) -> dict[str, str]:
    return {
        "AIAPI_DATABASE_URL": database_url,
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_INTERNAL_PORT": str(port),
        "AIAPI_HOLD_SWEEP_INTERVAL_S": "0.2",
        **extra,
    }


@pytest.fixture
async def migrated(database_url: str) -> str:
    await prepare_database(database_url, default_catalogue())
    return database_url


@pytest.fixture
async def db(migrated: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    conn = await psycopg.AsyncConnection.connect(
        migrated, autocommit=True, options=f"-c search_path={SCHEMA},public"
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def billing(migrated: str, nats_url: str) -> AsyncIterator[Service]:
    service = Service(billing_settings(migrated, nats_url))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await assert_books_balance(migrated)


async def assert_books_balance(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        database_url, options=f"-c search_path={SCHEMA},public"
    ) as conn:
        findings = await audit(conn)
    assert findings == []


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def usage_event(
    account_id: str,
    *,
    request_id: str | None = None,
    model: str = "claude-sonnet-4-6",
    plan: str = "basic",
    started_at: datetime | None = None,
    input_tokens: int = 1000,
    output_tokens: int = 500,
    **usage: int,
) -> UsageRecorded:
    rid = request_id or f"req_{new_event_id()}"
    start = started_at or NOW
    return UsageRecorded(
        event_id=rid,
        request_id=rid,
        account_id=account_id,
        key_id="key_1",
        model=model,
        requested_model=model,
        plan=plan,  # type: ignore[arg-type]
        route="anthropic",
        started_at=start,
        finished_at=start + timedelta(seconds=2),
        outcome="ok",
        status_code=200,
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, **usage),
    )


def admission(
    account_id: str,
    *,
    request_id: str | None = None,
    max_tokens: int = 1000,
    estimated_input_tokens: int = 1000,
    plan: str = "basic",
    model: str = "claude-sonnet-4-6",
) -> AdmissionRequest:
    return AdmissionRequest(
        request_id=request_id or f"req_{new_event_id()}",
        account_id=account_id,
        key_id="key_1",
        plan=plan,  # type: ignore[arg-type]
        model=model,
        estimated_input_tokens=estimated_input_tokens,
        max_tokens=max_tokens,
        started_at=datetime.now(UTC),
    )


async def admit(bus: Bus, req: AdmissionRequest) -> AdmissionReply:
    data = await bus.request(ADMIT_SUBJECT, req.model_dump_json().encode(), timeout_s=10.0)
    return AdmissionReply.model_validate_json(data)


async def credit(bus: Bus, account_id: str, usd: str, key: str | None = None) -> AdjustReply:
    cmd = AdjustCommand(
        account_id=account_id,
        amount=parse_usd(usd),
        reason="test top-up",
        idempotency_key=key or new_event_id(),
    )
    data = await bus.request(ADJUST_SUBJECT, cmd.model_dump_json().encode(), timeout_s=10.0)
    return AdjustReply.model_validate_json(data)


async def scalar(db: psycopg.AsyncConnection[Any], query: str, *params: Any) -> Any:
    cur = await db.execute(query, params)  # type: ignore[arg-type]
    row = await cur.fetchone()
    return None if row is None else row[0]
