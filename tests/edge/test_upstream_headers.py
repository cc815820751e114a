"""What the upstream sees of a client's headers: an allowlist; and the operator's anthropic-beta
policy, refused before admission and before anything goes upstream, in each route's format."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from .conftest import EdgeEnv
from .support import UPSTREAM_KEY, sim_requests

ALLOWED = "ok-2025-01-01"
DENIED = "denied-2025-01-01"
UNLISTED = "other-2025-01-01"

MESSAGE = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}
ROUTES = [
    ("/v1/messages", {**MESSAGE, "max_tokens": 10}),
    ("/v1/messages/count_tokens", MESSAGE),
    ("/v1/chat/completions", MESSAGE),
]
# What the upstream may see at all (the rest of the HTTP/1.1 head is the edge's own client).
UPSTREAM_HEADERS = {
    "host",
    "content-length",
    "content-type",
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "user-agent",
    "x-api-key",
}


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"edge_beta_deny": DENIED, "edge_beta_allow": f"{ALLOWED},{DENIED}"}


async def test_only_allowlisted_headers_reach_the_upstream(env: EdgeEnv) -> None:
    sent = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": ALLOWED,
        "accept": "application/json",
        "content-type": "application/json; charset=utf-8",
        "user-agent": "claude-cli/9.9.9 (external, cli)",
        "authorization": f"Bearer {env.key}",
        "x-api-key": env.key,
        "cookie": "session=secret-cookie",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-host": "customer.example",
        "x-real-ip": "203.0.113.7",
        "forwarded": "for=203.0.113.7",
        "cf-connecting-ip": "203.0.113.7",
        "true-client-ip": "203.0.113.7",
        "origin": "https://customer.example",
        "x-stainless-os": "Linux",
        "x-app": "cli",
        "x-custom-trace": "trace-me",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for path, payload in ROUTES:
            answer = await http.post(env.url + path, content=orjson.dumps(payload), headers=sent)
            assert answer.status_code == 200, (path, answer.text)
    received = sim_requests(env.sim_url)
    paths = [r["path"] for r in received]
    assert paths == ["/v1/messages", "/v1/messages/count_tokens", "/v1/messages"]
    for request in received:
        headers = {name.lower(): value for name, value in request["headers"]}
        assert set(headers) <= UPSTREAM_HEADERS, set(headers) - UPSTREAM_HEADERS
        assert headers["x-api-key"] == UPSTREAM_KEY
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == "aiapi-edge"
        assert headers["anthropic-beta"] == ALLOWED
        values = " ".join(value for _, value in request["headers"])
        for secret in (env.key, "secret-cookie", "203.0.113.7", "customer.example", "trace-me"):
            assert secret not in values


@pytest.mark.parametrize("refused", [DENIED, UNLISTED])
@pytest.mark.parametrize(("path", "payload"), ROUTES[:2])
async def test_a_refused_beta_is_a_400_naming_it_before_admission(
    env: EdgeEnv, path: str, payload: dict[str, Any], refused: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            env.url + path,
            content=orjson.dumps(payload),
            headers={"x-api-key": env.key, "anthropic-beta": f"{ALLOWED}, {refused}"},
        )
    assert answer.status_code == 400
    error = answer.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert f"`{refused}`" in error["error"]["message"]
    assert error["request_id"] == answer.headers["request-id"]
    assert sim_requests(env.sim_url) == []
    assert env.billing.requests == []


async def test_a_refused_beta_on_the_openai_route_is_an_openai_400(env: EdgeEnv) -> None:
    sdk = openai.AsyncOpenAI(
        base_url=env.url + "/v1",
        api_key=env.key,
        max_retries=0,
        default_headers={"anthropic-beta": DENIED},
    )
    env.clients.append(sdk)
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.type == "invalid_request_error"  # type: ignore[attr-defined]
    assert f"`{DENIED}`" in refused.value.message
    assert refused.value.response.headers["x-request-id"].startswith("req_")
    assert sim_requests(env.sim_url) == []
    assert env.billing.requests == []
    # The same client with an allowed value is served (and admitted).
    sdk_ok = env.openai()
    await sdk_ok.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": "x"}],
        extra_headers={"anthropic-beta": ALLOWED},
    )
    assert len(sim_requests(env.sim_url)) == 1
    assert len(env.billing.requests) == 1


async def test_an_unauthenticated_request_hears_401_before_any_beta_check(env: EdgeEnv) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            env.url + "/v1/messages",
            content=orjson.dumps(ROUTES[0][1]),
            headers={"x-api-key": "sk-cc-unknown000000000000", "anthropic-beta": DENIED},
        )
    assert answer.status_code == 401
