"""``POST /v1/responses`` through the official ``openai`` SDK (``responses.create`` and
``responses.stream``), the simulator upstream, billing as the other routes."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiapi_simulator.thinking import sign_thinking

from .conftest import EdgeEnv
from .support import sim_requests, usage_events

WEATHER: Any = {
    "type": "function",
    "name": "weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def upstream_raw(env: EdgeEnv, back: int = 1) -> bytes:
    raw: bytes = sim_requests(env.sim_url)[-back]["raw"]
    return raw


def upstream_body(env: EdgeEnv, back: int = 1) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(upstream_raw(env, back))
    return parsed


async def test_a_plain_response_with_instructions_usage_and_request_ids(env: EdgeEnv) -> None:
    sdk = env.openai()
    raw = await sdk.responses.with_raw_response.create(
        model="claude-haiku-4-5",
        instructions="Be brief.",
        input="Hi [[reply: Hello there.]]",
        max_output_tokens=30,
        store=False,
    )
    response = raw.parse()
    assert response.output_text == "Hello there."
    assert response.status == "completed"
    assert response.model == "claude-haiku-4-5"
    assert response.id == "resp_" + raw.headers["x-request-id"].removeprefix("req_")
    assert raw.headers["x-request-id"] == raw.headers["request-id"]
    assert [item.type for item in response.output] == ["message"]
    usage = response.usage
    assert usage is not None and usage.output_tokens == 3
    assert usage.total_tokens == usage.input_tokens + 3
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert upstream_body(env) == {
        "model": "claude-haiku-4-5",
        "max_tokens": 30,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi [[reply: Hello there.]]"}]}
        ],
        "system": [{"type": "text", "text": "Be brief."}],
    }
    [event] = await usage_events(env.bus, 1)
    assert event.route == "responses" and event.usage.output_tokens == 3
