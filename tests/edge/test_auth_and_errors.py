"""Authentication from the KV mirror, and the gateway's own errors in the contract's shapes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import httpx
import orjson
import pytest
from aiapi_shared.admission import AdmissionReply

from .conftest import EdgeEnv
from .support import key_record, make_key, put_key

HELLO = [{"role": "user", "content": "hello"}]


async def post(
    env: EdgeEnv, body: bytes, headers: dict[str, str] | None = None, path: str = "/v1/messages"
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            env.url + path,
            content=body,
            headers={"x-api-key": env.key, "content-type": "application/json", **(headers or {})},
        )


def body(**fields: object) -> bytes:
    return orjson.dumps(
        {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": HELLO, **fields}
    )


def assert_error(answer: httpx.Response, status: int, type_: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    payload = answer.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == type_
    assert payload["request_id"] == answer.headers["request-id"]
    return payload


async def test_bearer_and_x_api_key_both_authenticate(env: EdgeEnv) -> None:
    assert (await post(env, body())).status_code == 200
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            env.url + "/v1/messages", content=body(), headers={"authorization": f"Bearer {env.key}"}
        )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": ""},
        {"x-api-key": "sk-cc-unknownkey0000000000000000000"},
        {"x-api-key": "nope"},
    ],
)
async def test_missing_unknown_or_malformed_keys_get_401(
    env: EdgeEnv, headers: dict[str, str]
) -> None:
    assert_error(await post(env, body(), headers), 401, "authentication_error")
    assert env.billing.requests == []


async def test_a_revoked_key_fails_within_one_second(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    await sdk.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    await put_key(env.bus, env.key, key_record(env.account_id, key_status="revoked"))
    deadline = time.monotonic() + 1.0  # the contract's bound
    answer = await post(env, body())
    while answer.status_code == 200 and time.monotonic() < deadline:
        answer = await post(env, body())
    assert_error(answer, 401, "authentication_error")
    with pytest.raises(anthropic.AuthenticationError):
        await sdk.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]


async def test_a_suspended_account_or_deleted_record_fails(env: EdgeEnv) -> None:
    other = make_key()
    await put_key(env.bus, other, key_record("acct_other", account_status="suspended"))
    deadline = time.monotonic() + 1.0
    answer = await post(env, body(), {"x-api-key": other})
    while answer.status_code == 200 and time.monotonic() < deadline:
        answer = await post(env, body(), {"x-api-key": other})
    assert_error(answer, 401, "authentication_error")


async def test_a_body_over_the_limit_is_413(env: EdgeEnv) -> None:
    big = b'{"model":"claude-haiku-4-5","x":"' + b"a" * (33 * 1024 * 1024) + b'"}'
    assert_error(await post(env, big), 413, "request_too_large")


async def test_malformed_json_unknown_model_and_unknown_route(env: EdgeEnv) -> None:
    assert_error(await post(env, b"{not json"), 400, "invalid_request_error")
    payload = assert_error(await post(env, body(model="gpt-4o")), 400, "invalid_request_error")
    assert "claude-sonnet-4-6" in str(payload["error"])
    assert_error(await post(env, body(), path="/v1/nothing"), 404, "not_found_error")
    assert env.billing.requests == []


async def test_an_upstream_error_about_the_request_passes_through(env: EdgeEnv) -> None:
    payload = assert_error(await post(env, body(max_tokens=0)), 400, "invalid_request_error")
    assert "max_tokens" in str(payload["error"])


async def test_billing_refusals_map_to_402_429_and_401(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    env.billing.reply = AdmissionReply(decision="insufficient_balance", message="Balance too low.")
    with pytest.raises(anthropic.APIStatusError) as refused:
        await sdk.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    assert refused.value.status_code == 402
    assert refused.value.body["error"]["type"] == "insufficient_balance"  # type: ignore[index]

    env.billing.reply = AdmissionReply(decision="rate_limited", retry_after_s=7)
    answer = await post(env, body())
    assert_error(answer, 429, "rate_limit_error")
    assert answer.headers["retry-after"] == "7"

    env.billing.reply = AdmissionReply(decision="account_inactive")
    assert_error(await post(env, body()), 401, "authentication_error")
    from .support import sim_requests

    assert sim_requests(env.sim_url) == []  # nothing refused reached the upstream


@pytest.mark.slow
async def test_revocation_still_arrives_after_nats_restarts(env: EdgeEnv, nats_server: Any) -> None:
    assert (await post(env, body())).status_code == 200
    nats_server.stop()
    nats_server.start()
    for _ in range(50):  # the test's own connection reconnects first
        try:
            await put_key(env.bus, env.key, key_record(env.account_id, key_status="revoked"))
            break
        except Exception:
            await asyncio.sleep(0.2)
    deadline = time.monotonic() + 10.0
    answer = await post(env, body())
    while answer.status_code == 200 and time.monotonic() < deadline:
        answer = await post(env, body())
    assert_error(answer, 401, "authentication_error")
