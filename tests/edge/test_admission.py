"""Admission when billing is away (the offline allowance), the balance mirror, and the usage
record route that asks billing for a priced request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiapi_shared.billing_api import (
    REQUEST_RECORD_SUBJECT,
    ApiError,
    RequestRecordQuery,
    RequestRecordReply,
)
from aiapi_shared.events.records_v1 import BALANCES_BUCKET, BalanceSnapshot
from aiapi_shared.events.usage_v1 import Usage

from .conftest import EdgeEnv
from .support import put_balance as support_put_balance
from .support import usage_events, wait_for

BODY = orjson.dumps(
    {
        "model": "claude-opus-4-7",
        "max_tokens": 4000,
        "messages": [{"role": "user", "content": "hi"}],
    }
)


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    # One request costs about 0.10 USD at most (4000 output tokens at 25 USD/Mtok).
    return {"edge_admission_timeout_s": 0.2, "edge_offline_allowance_usd": "0.25"}


async def post(env: EdgeEnv, path: str = "/v1/messages", body: bytes = BODY) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            env.url + path,
            content=body,
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )


async def put_balance(env: EdgeEnv, available_usd: int) -> None:
    await support_put_balance(env.bus, env.account_id, available_usd)

    async def mirrored() -> bool:
        return env.edge.app.service.balances.get(env.account_id) is not None

    await wait_for(mirrored)


def assert_cannot_admit(answer: httpx.Response) -> None:
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "api_error"
    assert 1 <= int(answer.headers["retry-after"]) <= 60


async def test_billing_away_admits_within_the_allowance_then_503(env: EdgeEnv) -> None:
    await put_balance(env, 10)
    await env.bus.client.drain()  # the responder (and the test's connection) go away
    answers = [await post(env) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 503]
    assert_cannot_admit(answers[2])


async def test_no_allowance_without_a_balance_snapshot(env: EdgeEnv) -> None:
    env.billing.away = True
    assert_cannot_admit(await post(env))


async def test_billing_answering_again_does_not_refill_the_allowance_before_it_settles(
    env: EdgeEnv,
) -> None:
    settled: set[str] = set()

    async def record(data: bytes) -> bytes:
        query = RequestRecordQuery.model_validate_json(data)
        if query.request_id not in settled:
            error = ApiError(error="not_found", message="no such request", status=404)
            return error.model_dump_json().encode()
        return (
            RequestRecordReply(
                id=query.request_id,
                model="claude-opus-4-7",
                route="anthropic",
                created_at=datetime.now(UTC),
                status="ok",
                usage=Usage(input_tokens=10, output_tokens=5),
                cost_usd=1,
            )
            .model_dump_json()
            .encode()
        )

    await env.bus.serve(REQUEST_RECORD_SUBJECT, record, queue="billing")
    await put_balance(env, 10)
    env.billing.away = True
    offline = [await post(env) for _ in range(2)]  # 0.20 of the 0.25 allowance
    assert [a.status_code for a in offline] == [200, 200]
    env.billing.away = False
    assert (await post(env)).status_code == 200  # billing answers: admitted by billing
    env.billing.away = True
    assert_cannot_admit(await post(env))  # the two offline requests still count
    settled.update(a.headers["request-id"] for a in offline)  # billing prices them

    async def released() -> bool:
        return env.edge.app.service.gateway.admitter._allowance.spent(env.account_id) == 0

    await wait_for(released, timeout_s=10)
    assert (await post(env)).status_code == 200


async def test_a_zero_balance_snapshot_refuses_with_402_without_asking(env: EdgeEnv) -> None:
    kv = await env.bus.ensure_kv(BALANCES_BUCKET)
    snapshot = BalanceSnapshot(
        account_id=env.account_id, balance=0, available=0, version=3, as_of=datetime.now(UTC)
    )
    await kv.put(env.account_id, snapshot.model_dump_json().encode())
    answer = await post(env)
    for _ in range(50):
        if answer.status_code == 402:
            break
        answer = await post(env)
    assert answer.status_code == 402
    assert answer.json()["error"]["type"] == "insufficient_balance"


async def test_the_usage_record_route_asks_billing_for_the_callers_own_request(
    env: EdgeEnv,
) -> None:
    queries: list[RequestRecordQuery] = []

    async def answer(data: bytes) -> bytes:
        query = RequestRecordQuery.model_validate_json(data)
        queries.append(query)
        if query.request_id != "req_known":
            return (
                ApiError(error="not_found", message="no such request", status=404)
                .model_dump_json()
                .encode()
            )
        return (
            RequestRecordReply(
                id="req_known",
                model="claude-opus-4-7",
                route="anthropic",
                created_at=datetime(2026, 1, 2, tzinfo=UTC),
                status="settled",
                usage=Usage(input_tokens=10, output_tokens=5),
                cost_usd=1_234,
            )
            .model_dump_json()
            .encode()
        )

    await env.bus.serve(REQUEST_RECORD_SUBJECT, answer, queue="billing")
    async with httpx.AsyncClient(timeout=10) as http:
        found = await http.get(
            env.url + "/api/proxy/v1/usage/requests/req_known", headers={"x-api-key": env.key}
        )
        missing = await http.get(
            env.url + "/v1/usage/requests/req_other", headers={"x-api-key": env.key}
        )
    assert found.status_code == 200
    record = found.json()
    assert record["cost_usd"] == "0.000001234"
    assert record["usage"]["input_tokens"] == 10
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert {q.account_id for q in queries} == {env.account_id}


async def test_health_readiness_and_metrics(env: EdgeEnv) -> None:
    assert (await post(env)).status_code == 200
    await usage_events(env.bus, 1)
    async with httpx.AsyncClient(timeout=10) as http:
        probes = env.edge.internal_url
        assert (await http.get(probes + "/livez")).status_code == 200
        assert (await http.get(probes + "/readyz")).status_code == 200

        async def drained() -> bool:
            metrics = (await http.get(probes + "/metrics")).text
            return "aiapi_edge_spool_depth 0.0" in metrics

        await wait_for(drained, timeout_s=5, step_s=0.1)
        metrics = (await http.get(probes + "/metrics")).text
    assert 'aiapi_edge_requests_total{route="anthropic",status="200"} 1.0' in metrics
    assert 'aiapi_edge_upstream_keys{health="healthy"} 1.0' in metrics
    assert "aiapi_edge_usage_published_total 1.0" in metrics
