"""The upstream pool: retries on another key only before the first byte, health by error class."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from .conftest import EdgeEnv
from .support import sim_post, sim_requests, usage_events

KEY_A, KEY_B = "sk-ant-pool-key-aaaa", "sk-ant-pool-key-bbbb"


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"upstream_api_keys": f"{KEY_A},{KEY_B}"}


def body(text: str = "hello", **fields: object) -> bytes:
    return orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": text}],
            **fields,
        }
    )


async def post(env: EdgeEnv, content: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            env.url + "/v1/messages",
            content=content,
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )


def keys_used(env: EdgeEnv) -> list[str]:
    used = []
    for request in sim_requests(env.sim_url):
        headers = {k.lower(): v for k, v in request["headers"]}
        used.append(headers["x-api-key"])
    return used


def arm(
    env: EdgeEnv, fault: str, *, count: int = 1, api_key: str | None = None, **extra: object
) -> None:
    payload: dict[str, object] = {"fault": fault, "count": count, **extra}
    if api_key:
        payload["api_key"] = api_key
    sim_post(env.sim_url, "/_sim/faults", payload)


@pytest.mark.parametrize("fault", ["429", "529", "500"])
async def test_a_transient_failure_is_retried_on_the_other_key(env: EdgeEnv, fault: str) -> None:
    arm(env, fault, api_key=KEY_A, count=5)
    for _ in range(2):
        answer = await post(env, body())
        assert answer.status_code == 200, answer.text
    used = keys_used(env)
    assert KEY_B in used and used[-1] == KEY_B
    if fault in ("429", "529"):
        # The key rests for its retry-after: the next request goes straight to the other key.
        assert used.count(KEY_A) == 1


async def test_a_rejected_key_is_taken_out_of_the_pool(env: EdgeEnv) -> None:
    arm(env, "credit_balance_too_low", api_key=KEY_A)
    for _ in range(4):
        assert (await post(env, body())).status_code == 200
    assert keys_used(env).count(KEY_A) == 1


async def test_every_key_failing_gives_502_and_every_key_overloaded_gives_529(env: EdgeEnv) -> None:
    arm(env, "500", count=2)
    failed = await post(env, body())
    assert failed.status_code == 502
    assert failed.json()["error"]["type"] == "api_error"
    arm(env, "529", count=2, retry_after=3)
    overloaded = await post(env, body())
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    assert overloaded.headers["retry-after"] == "3"
    events = await usage_events(env.bus, 2)
    assert [(e.outcome, e.status_code) for e in events] == [
        ("upstream_error", 502),
        ("upstream_error", 529),
    ]


async def test_no_retry_once_the_stream_has_started(env: EdgeEnv) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            env.url + "/v1/messages",
            content=body("x [[tokens: 20]] [[fail: stream_error after=5]]", stream=True),
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )
    assert answer.status_code == 200
    assert answer.text.endswith(
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    assert len(sim_requests(env.sim_url)) == 1
    [event] = await usage_events(env.bus, 1)
    assert event.outcome == "stream_error"
    assert event.usage.input_tokens > 0


async def test_an_upstream_that_drops_mid_stream_gives_an_error_event(env: EdgeEnv) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            env.url + "/v1/messages",
            content=body("x [[tokens: 20]] [[fail: disconnect after=5]]", stream=True),
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )
    frames = [f for f in answer.text.split("\n\n") if f]
    assert frames[-1].startswith("event: error\n")
    assert '"api_error"' in frames[-1]
    assert len(sim_requests(env.sim_url)) == 1
