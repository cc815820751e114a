"""Meters beyond tokens at the edge: what the upstream reports is carried in the usage event, and
a tool or option the catalogue cannot price is refused with a 400 before the upstream sees it."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from .conftest import EdgeEnv
from .support import sim_requests, usage_events

SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"edge_unpriced_allow": "code_execution"}


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def test_server_tools_tier_and_region_reach_the_usage_event(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    text = "[[usage: web_search_requests=3 web_fetch_requests=1 inference_geo=us]] hi"
    answer = await sdk.messages.with_raw_response.create(**ask(text, tools=[SEARCH]))
    message = await answer.parse()
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 3
    async with sdk.messages.stream(**ask("[[usage: input_tokens=250000]] long")) as stream:
        await stream.get_final_message()
        streamed_id = stream.response.headers["request-id"]
    by_id = {e.request_id: e for e in await usage_events(env.bus, 2)}
    usage = by_id[answer.headers["request-id"]].usage
    assert (usage.web_search_requests, usage.web_fetch_requests) == (3, 1)
    assert (usage.service_tier, usage.inference_geo, usage.speed) == ("standard", "us", "")
    assert by_id[streamed_id].usage.input_tokens == 250_000


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"tools": [{"type": "tool_search_tool_regex_20251119", "name": "s"}]}, "tool_search"),
        ({"service_tier": "auto"}, "service_tier:priority"),
        ({"speed": "fast"}, "speed:fast"),
        ({"inference_geo": "eu"}, "inference_geo:eu"),
    ],
)
async def test_what_the_catalogue_cannot_price_is_refused_before_the_upstream(
    env: EdgeEnv, extra: dict[str, Any], named: str
) -> None:
    sdk = env.anthropic()
    with pytest.raises(anthropic.BadRequestError) as refused:
        await sdk.messages.create(**ask("never sent", extra_body=extra))
    assert refused.value.status_code == 400
    body = refused.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert named in body["error"]["message"]
    assert body["request_id"] == refused.value.response.headers["request-id"]
    assert sim_requests(env.sim_url) == []


async def test_the_operator_allows_an_unpriced_tool_by_setting(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    tool = {"type": "code_execution_20250825", "name": "code_execution"}
    message = await sdk.messages.create(**ask("run it", extra_body={"tools": [tool]}))
    assert message.usage.output_tokens > 0
    assert len(sim_requests(env.sim_url)) == 1
