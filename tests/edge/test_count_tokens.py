"""count_tokens: free and not admitted, but limited per customer key per minute on each replica."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from .conftest import EdgeEnv
from .support import http_get, key_record, make_key, put_key, sim_requests, wait_for

PER_MINUTE = 3
MESSAGES: Any = [{"role": "user", "content": "What is the answer?"}]


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"edge_count_tokens_per_minute": PER_MINUTE}


async def test_count_tokens_beyond_the_keys_limit_is_a_429_with_retry_after(
    env: EdgeEnv,
) -> None:
    sdk = env.anthropic()
    for _ in range(PER_MINUTE):
        counted = await sdk.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
        assert counted.input_tokens > 0
    with pytest.raises(anthropic.RateLimitError) as limited:
        await sdk.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
    assert limited.value.type == "rate_limit_error"
    assert limited.value.request_id == limited.value.response.headers["request-id"]
    # One request back every 60 / PER_MINUTE seconds: the client is told to wait about that.
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60 // PER_MINUTE
    assert len(sim_requests(env.sim_url)) == PER_MINUTE  # the refused one never left the edge
    assert env.billing.requests == []  # count_tokens is not admitted

    # Another key has its own count; inference is not limited by it.
    other = make_key()
    await put_key(env.bus, other, key_record(env.account_id, key_id="key_2"))

    async def known() -> bool:  # the edge's key mirror has the new record
        return http_get(env.url + "/v1/models", {"x-api-key": other})[0] == 200

    await wait_for(known)
    counted = await env.anthropic(other).messages.count_tokens(
        model="claude-haiku-4-5", messages=MESSAGES
    )
    assert counted.input_tokens > 0
    message = await sdk.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    assert message.stop_reason == "end_turn"
