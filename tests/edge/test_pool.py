"""The upstream pool: retries on another key only before the first byte, and a key's health
decided by the structured error alone (status, error.type, error.details.error_code)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from .conftest import EdgeEnv
from .support import http_get, sim_post, sim_requests, usage_events

KEY_A, KEY_B = "sk-ant-pool-key-aaaa", "sk-ant-pool-key-bbbb"


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    # Round-robin: these tests are about key health, not conversation affinity (test_affinity.py).
    return {"upstream_api_keys": f"{KEY_A},{KEY_B}", "edge_key_affinity": False}


def body(text: str = "hello", **fields: object) -> bytes:
    return orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": text}],
            **fields,
        }
    )


def count_body() -> bytes:
    return orjson.dumps(
        {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hello"}]}
    )


async def post(
    env: EdgeEnv,
    content: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            env.url + path,
            content=content,
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01", **(headers or {})},
        )


def keys_used(env: EdgeEnv, path: str = "/v1/messages") -> list[str]:
    used = []
    for request in sim_requests(env.sim_url):
        if request["path"] == path:
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


def key_health(env: EdgeEnv) -> dict[str, int]:
    """``aiapi_edge_upstream_keys{health}`` from the edge's /metrics."""
    status, _, text = http_get(env.edge.internal_url + "/metrics")
    assert status == 200
    counts: dict[str, int] = {}
    for line in text.decode().splitlines():
        if line.startswith("aiapi_edge_upstream_keys{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('"')[1]] = int(float(value))
    return {health: count for health, count in counts.items() if count}


@pytest.mark.parametrize("fault", ["429", "500"])
async def test_a_transient_failure_is_retried_on_the_other_key(env: EdgeEnv, fault: str) -> None:
    arm(env, fault, api_key=KEY_A, count=5, retry_after=30)
    for _ in range(2):
        answer = await post(env, body())
        assert answer.status_code == 200, answer.text
    used = keys_used(env)
    assert KEY_B in used and used[-1] == KEY_B
    if fault == "429":
        # The key rests for its retry-after: the next request goes straight to the other key.
        assert used.count(KEY_A) == 1
        assert key_health(env) == {"healthy": 1, "resting": 1}


@pytest.mark.parametrize("fault", ["401", "402", "403", "spend_limit"])
async def test_a_key_level_error_takes_the_key_out_of_the_pool(env: EdgeEnv, fault: str) -> None:
    arm(env, fault, api_key=KEY_A)
    for _ in range(4):
        assert (await post(env, body())).status_code == 200
    assert keys_used(env).count(KEY_A) == 1
    assert key_health(env) == {"healthy": 1, "disabled": 1}


async def test_a_credit_balance_400_is_the_clients_answer_and_rests_no_key(env: EdgeEnv) -> None:
    """The 400 "credit balance is too low" is told apart from a client's 400 only by its message,
    which a client can write into (below): it is passed on, and the key stays."""
    arm(env, "credit_balance_too_low", api_key=KEY_A)
    answer = await post(env, body())
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.json()["request_id"] == answer.headers["request-id"]
    for _ in range(4):
        assert (await post(env, body())).status_code == 200
    assert keys_used(env).count(KEY_A) == 3
    assert key_health(env) == {"healthy": 2}
    metrics = http_get(env.edge.internal_url + "/metrics")[2].decode()
    assert 'aiapi_edge_upstream_client_errors_total{status="400"} 1.0' in metrics


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_a_client_cannot_knock_keys_out_with_words_the_upstream_echoes(
    env: EdgeEnv, path: str
) -> None:
    """The upstream repeats an unknown anthropic-beta value in its 400 message; a customer who
    sends "credit balance is too low" there gets the 400, and every key stays in the pool."""
    attack = {"anthropic-beta": "credit balance is too low"}
    content = body() if path == "/v1/messages" else count_body()
    for _ in range(4):
        answer = await post(env, content, attack, path)
        assert answer.status_code == 400, answer.text
        assert "credit balance is too low" in answer.json()["error"]["message"]
    assert key_health(env) == {"healthy": 2}
    for _ in range(4):
        assert (await post(env, body())).status_code == 200
    assert sorted(set(keys_used(env))) == [KEY_A, KEY_B]


async def test_count_tokens_failures_change_no_keys_health(env: EdgeEnv) -> None:
    """count_tokens is free: its upstream answers must not rest keys that paying traffic needs,
    even for a key-level status (it is retried on another key instead)."""
    for fault in ("401", "429", "500", "500", "500"):
        arm(env, fault, api_key=KEY_A, route="count_tokens")
    for _ in range(5):
        answer = await post(env, count_body(), path="/v1/messages/count_tokens")
        assert answer.status_code == 200, answer.text
        assert answer.json()["input_tokens"] > 0
    assert keys_used(env, "/v1/messages/count_tokens").count(KEY_A) >= 5
    assert key_health(env) == {"healthy": 2}
    for _ in range(2):
        assert (await post(env, body())).status_code == 200
    assert sorted(keys_used(env)) == [KEY_A, KEY_B]


async def test_count_tokens_uses_only_healthy_keys(env: EdgeEnv) -> None:
    arm(env, "401", api_key=KEY_A)
    assert (await post(env, body())).status_code == 200  # KEY_A out, KEY_B served
    for _ in range(3):
        answer = await post(env, count_body(), path="/v1/messages/count_tokens")
        assert answer.status_code == 200
    assert keys_used(env, "/v1/messages/count_tokens") == [KEY_B] * 3


async def test_every_key_failing_gives_502_and_every_key_resting_gives_529(env: EdgeEnv) -> None:
    arm(env, "500", count=2)
    failed = await post(env, body())
    assert failed.status_code == 502
    assert failed.json()["error"]["type"] == "api_error"
    # Both keys rest longer than the request may wait (10 s by default): 529 at once.
    arm(env, "429", count=2, retry_after=30)
    limited = await post(env, body())
    assert limited.status_code == 529
    assert limited.json()["error"]["type"] == "overloaded_error"
    assert limited.headers["retry-after"] == "30"
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


async def test_each_answer_is_counted_once_against_its_key(env: EdgeEnv) -> None:
    """The pool's served count (the operator's view of each key: tokens and list cost) takes
    each answer once, a JSON answer, a stream and an error answer passed on alike; it is made
    after the client has its answer, so it is there when the client reads it."""
    pool = env.edge.app.service.upstream.pool

    def served() -> tuple[int, int]:
        views = pool.views()
        output = sum(v.counters.tokens.get("output_tokens", 0) for v in views)
        return output, sum(v.counters.list_cost_nano for v in views)

    assert (await post(env, body("[[tokens: 7]]"))).status_code == 200
    output, cost = served()
    assert output == 7 and cost > 0
    streamed = await post(env, body("[[tokens: 5]]", stream=True))
    assert streamed.status_code == 200 and b"message_stop" in streamed.content
    output, cost_after_stream = served()
    assert output == 12 and cost_after_stream > cost
    arm(env, "credit_balance_too_low")
    assert (await post(env, body())).status_code == 400
    assert served() == (12, cost_after_stream)
