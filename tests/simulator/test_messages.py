"""`/v1/messages` through the official SDK: the simulator speaks the real wire format."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest
from aiapi_simulator.thinking import sign_thinking

from tests.simulator.conftest import HEADERS

MODEL = "claude-sonnet-4-6"
WEATHER = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
CLOCK = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def user(text: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_create_and_stream_give_the_same_message(client: anthropic.Anthropic) -> None:
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 200,
        "messages": user("What is the answer?"),
    }
    created = client.messages.create(**params)
    with client.messages.stream(**params) as stream:
        streamed = stream.get_final_message()
    assert created.content[0].type == "text"
    assert created.content[0].text == "Echo: What is the answer?"
    assert created.stop_reason == "end_turn"
    assert created.usage.input_tokens == 5
    assert created.usage.output_tokens == 7
    assert streamed.id != created.id
    dropped = {"id"}
    assert streamed.model_dump(exclude=dropped) == created.model_dump(exclude=dropped)


def test_several_tools_in_one_turn_stream_and_accumulate(client: anthropic.Anthropic) -> None:
    prompt = (
        "Plan [[reply: Let me check.]] "
        '[[tool: get_weather {"city": "Paris", "days": 3}]] [[tool: get_time {}]]'
    )
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 500,
        "tools": [WEATHER, CLOCK],
        "messages": user([{"type": "text", "text": prompt}]),
    }
    with client.messages.stream(**params) as stream:
        json_pieces = [
            event.delta.partial_json
            for event in stream
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
        ]
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["text", "tool_use", "tool_use"]
    assert final.stop_reason == "tool_use"
    weather, clock = final.content[1], final.content[2]
    assert weather.type == "tool_use"
    assert clock.type == "tool_use"
    assert (weather.name, weather.input) == ("get_weather", {"city": "Paris", "days": 3})
    assert (clock.name, clock.input) == ("get_time", {})
    assert weather.id.startswith("toolu_")
    assert weather.id != clock.id
    assert len(json_pieces) > 2
    created = client.messages.create(**params)
    assert created.model_dump(exclude={"id"}) == final.model_dump(exclude={"id"})


def test_a_declared_server_tool_is_a_server_tool_use_block_counted_in_usage(
    client: anthropic.Anthropic,
) -> None:
    prompt = '[[reply: Searching.]] [[tool: web_search {"query": "a"}]] [[tool: web_search]]'
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 500,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": user(prompt),
    }
    with client.messages.stream(**params) as stream:
        started = [e.content_block.type for e in stream if e.type == "content_block_start"]
        final = stream.get_final_message()
    assert started == ["text", "server_tool_use", "server_tool_use"]
    assert final.stop_reason == "end_turn"  # the upstream runs its own tools: the turn goes on
    assert final.content[1].type == "server_tool_use"
    assert final.content[1].id.startswith("srvtoolu_")
    assert final.usage.server_tool_use is not None
    assert final.usage.server_tool_use.web_search_requests == 2
    created = client.messages.create(**params)
    assert created.model_dump(exclude={"id"}) == final.model_dump(exclude={"id"})


def test_forced_tool_choice_builds_input_from_the_schema(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[CLOCK, WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=user("weather?"),
    )
    assert message.stop_reason == "tool_use"
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "example"})


def test_thinking_streams_deltas_and_one_signature(client: anthropic.Anthropic) -> None:
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": user("[[thinking: Two plus two is four.]] [[reply: 4]]"),
    }
    with client.messages.stream(**params) as stream:
        kinds = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert kinds.count("signature_delta") == 1
    assert kinds.count("thinking_delta") == 6
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking == "Two plus two is four."
    assert thinking.signature == sign_thinking("Two plus two is four.")
    assert final.usage.output_tokens == 6 + 1
    created = client.messages.create(**params)
    assert created.model_dump(exclude={"id"}) == final.model_dump(exclude={"id"})


def test_thinking_blocks_sent_back_are_accepted_and_tampering_is_rejected(
    client: anthropic.Anthropic,
) -> None:
    first = client.messages.create(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "adaptive"},
        tools=[WEATHER],
        messages=user('Weather? [[tool: get_weather {"city": "Oslo"}]]'),
    )
    thinking, tool_use = first.content[0], first.content[1]
    assert thinking.type == "thinking"
    assert tool_use.type == "tool_use"
    history: list[Any] = [
        *user("Weather?"),
        {
            "role": "assistant",
            "content": [
                thinking.model_dump(),
                {"type": "redacted_thinking", "data": "opaque-bytes"},
                tool_use.model_dump(include={"type", "id", "name", "input"}),
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny"}],
        },
    ]
    second = client.messages.create(
        model=MODEL, max_tokens=2048, thinking={"type": "adaptive"}, messages=history
    )
    assert second.content[-1].type == "text"
    assert second.content[-1].text == "Echo: Sunny"
    history[1]["content"][0] = {**thinking.model_dump(), "thinking": thinking.thinking + "!"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=2048, messages=history)
    assert caught.value.status_code == 400
    assert "Invalid `signature` in `thinking` block" in caught.value.message


def test_max_tokens_truncates_the_output(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=5, messages=user("[[tokens: 40]]"))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert message.content[0].type == "text"
    assert message.content[0].text == "lorem ipsum dolor si"
    with client.messages.stream(
        model=MODEL, max_tokens=5, messages=user("[[tokens: 40]]")
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.model_dump(exclude={"id"}) == message.model_dump(exclude={"id"})


def test_stop_sequences_end_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        stop_sequences=["STOP", "never"],
        messages=user("[[reply: counting 1 2 3 STOP 4 5]]"),
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "STOP"
    assert message.content[0].type == "text"
    assert message.content[0].text == "counting 1 2 3 "


def test_stream_framing_is_the_real_apis(http: httpx.Client) -> None:
    response = http.post(
        "/v1/messages",
        headers=HEADERS,
        json={"model": MODEL, "max_tokens": 50, "stream": True, "messages": user("hi")},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-1] == ""
    events = [frame.split("\n")[0] for frame in frames[:-1]]
    assert events == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        "event: content_block_delta",
        "event: content_block_delta",
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
    assert frames[6] == (
        "event: message_delta\n"
        'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
        '"usage":{"input_tokens":1,"cache_creation_input_tokens":0,'
        '"cache_read_input_tokens":0,"output_tokens":2}}'
    )


def test_every_response_carries_a_request_id_and_upstream_headers(http: httpx.Client) -> None:
    ok = http.post(
        "/v1/messages",
        headers=HEADERS,
        json={"model": MODEL, "max_tokens": 5, "messages": user("hi")},
    )
    missing_key = http.post("/v1/messages", json={})
    for response in (ok, missing_key):
        assert response.headers["request-id"].startswith("req_")
        assert response.headers["anthropic-organization-id"]
        assert response.headers["anthropic-ratelimit-requests-limit"]
    assert missing_key.status_code == 401
    assert missing_key.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "x-api-key header is required"},
        "request_id": missing_key.headers["request-id"],
    }


def test_bearer_authorization_is_accepted(http: httpx.Client) -> None:
    response = http.post(
        "/v1/messages",
        headers={"authorization": "Bearer sk-ant-x", "anthropic-version": "2023-06-01"},
        json={"model": MODEL, "max_tokens": 5, "messages": user("hi")},
    )
    assert response.status_code == 200
    assert response.json()["content"] == [{"type": "text", "text": "Echo: hi"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": 5, "messages": user("x")}, "model: Field required"),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        ({"model": MODEL, "max_tokens": 5, "messages": []}, "at least one message"),
        ({"model": MODEL, "messages": user("x")}, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 0, "messages": user("x")}, "greater than or equal to 1"),
        ({"model": MODEL, "max_tokens": 5, "messages": user("[[tokens: x]]")}, "directive"),
    ],
)
def test_invalid_requests_get_400(http: httpx.Client, body: dict[str, Any], message: str) -> None:
    response = http.post("/v1/messages", headers=HEADERS, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_malformed_json_gets_400(http: httpx.Client) -> None:
    response = http.post("/v1/messages", headers=HEADERS, content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_system_turns_need_the_per_turn_control_beta(http: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "hello"},
        {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]},
        {"role": "user", "content": "Hi [[reply: ok]]"},
    ]
    body = {"model": MODEL, "max_tokens": 20, "messages": messages}
    plain = http.post("/v1/messages", headers=HEADERS, json=body)
    assert plain.status_code == 400
    assert "messages.1.role" in plain.json()["error"]["message"]
    beta = {**HEADERS, "anthropic-beta": "per-turn-control-2026-07-01"}
    answered = http.post("/v1/messages", headers=beta, json=body)
    assert answered.status_code == 200, answered.text
    assert answered.json()["content"][0]["text"] == "ok"
    broken = {
        **body,
        "messages": [*messages[:1], {"role": "system", "content": [{"type": "image"}]}],
    }
    refused = http.post("/v1/messages", headers=beta, json=broken)
    assert refused.status_code == 400
    assert "messages.1.content.0" in refused.json()["error"]["message"]
