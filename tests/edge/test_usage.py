"""Metering: every usage event carries exactly what the upstream reported, on both forms of the
answer, with all five meters; and it reaches JetStream with the response's request id."""

from __future__ import annotations

from typing import Any

from aiapi_shared.events.usage_v1 import UsageRecorded

from .conftest import EdgeEnv
from .support import usage_events

SYSTEM_5M = {"type": "text", "text": "You are terse. " * 20, "cache_control": {"type": "ephemeral"}}
SYSTEM_1H = {
    "type": "text",
    "text": "Answer in French. " * 20,
    "cache_control": {"type": "ephemeral", "ttl": "1h"},
}


def expected_meters(usage: Any) -> dict[str, int | str]:
    split = usage.cache_creation
    tools = usage.server_tool_use
    return {
        "web_search_requests": tools.web_search_requests if tools else 0,
        "web_fetch_requests": tools.web_fetch_requests if tools else 0,
        "service_tier": usage.service_tier or "",
        "inference_geo": "",
        "speed": "",
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        "cache_creation_5m_input_tokens": split.ephemeral_5m_input_tokens if split else 0,
        "cache_creation_1h_input_tokens": split.ephemeral_1h_input_tokens if split else 0,
    }


def meters(event: UsageRecorded) -> dict[str, int | str]:
    return event.usage.model_dump(exclude={"thinking_tokens"})


async def test_each_meter_is_exact_streamed_or_not(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 200,
        "system": [SYSTEM_5M, SYSTEM_1H],
        "messages": [{"role": "user", "content": "Count. [[tokens: 37]]"}],
    }
    first = await sdk.messages.with_raw_response.create(**request)
    first_message = await first.parse()
    async with sdk.messages.stream(**request) as stream:
        second = await stream.get_final_message()
        second_id = stream.response.headers["request-id"]
    events = await usage_events(env.bus, 2)
    by_id = {e.request_id: e for e in events}

    written = by_id[first.headers["request-id"]]
    assert meters(written) == expected_meters(first_message.usage)
    assert written.usage.cache_creation_5m_input_tokens > 0
    assert written.usage.cache_creation_1h_input_tokens > 0
    assert written.usage.output_tokens == 37

    read = by_id[second_id]
    assert meters(read) == expected_meters(second.usage)
    assert read.usage.cache_read_input_tokens == (
        written.usage.cache_creation_5m_input_tokens + written.usage.cache_creation_1h_input_tokens
    )
    assert read.usage.output_tokens == 37


async def test_the_usage_event_describes_the_request(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    raw = await sdk.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    message = await raw.parse()
    [event] = await usage_events(env.bus, 1)
    request_id = raw.headers["request-id"]
    assert event.event_id == event.request_id == request_id
    assert event.account_id == env.account_id
    assert event.key_id == "key_1"
    assert (event.model, event.requested_model, event.plan) == ("claude-haiku-4-5",) * 2 + (
        "basic",
    )
    assert (event.route, event.outcome, event.status_code) == ("anthropic", "ok", 200)
    assert event.hold_id == f"hold_{request_id}"
    assert event.admission == "billing"
    assert event.client_disconnected is False
    assert event.usage.input_tokens == message.usage.input_tokens
    assert event.usage.output_tokens == message.usage.output_tokens
    assert event.started_at <= event.finished_at
    [admission] = env.billing.requests
    assert admission.request_id == request_id
    assert admission.max_tokens == 50
