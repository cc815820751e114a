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
from .support import (
    BILLED,
    key_record,
    make_key,
    put_key,
    sim_requests,
    stream_count,
    usage_events,
)
from .test_hold_extension import LONG_STREAM, serve_extensions, small_hold, stream_text

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


async def test_the_stream_helper_gets_the_event_sequence_and_the_final_response(
    env: EdgeEnv,
) -> None:
    sdk = env.openai(prefix="")  # tools that call /responses without /v1
    async with sdk.responses.stream(
        model="claude-sonnet-4-6",
        input='Go [[reply: Checking.]] [[tool: weather {"city": "Paris"}]] [[tool: weather]]',
        tools=[WEATHER],
        store=False,
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    assert final.output_text == "Checking."
    calls = [(i.name, i.arguments) for i in final.output if i.type == "function_call"]
    assert calls == [("weather", '{"city":"Paris"}'), ("weather", "{}")]
    assert final.usage is not None and final.usage.output_tokens > 0
    [event] = await usage_events(env.bus, 1)
    assert event.route == "responses" and event.outcome == "ok"
    assert event.usage.output_tokens == final.usage.output_tokens


async def test_thinking_and_tools_round_trip_the_thinking_block_byte_identical(
    env: EdgeEnv,
) -> None:
    """Turn 1 (streamed) thinks and calls a tool; turn 2 sends the output items back with the
    tool's output: the upstream gets the very thinking block it wrote, signature and all."""
    sdk = env.openai()
    question = 'Weather? [[thinking: Paris, so call weather.]] [[tool: weather {"city": "Paris"}]]'
    async with sdk.responses.stream(
        model="claude-haiku-4-5",
        input=question,
        tools=[WEATHER],
        reasoning={"effort": "low", "summary": "auto"},
        store=False,
    ) as stream:
        first = await stream.get_final_response()
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    assert [s.text for s in reasoning.summary] == ["Paris, so call weather."]
    assert reasoning.encrypted_content
    thinking = {
        "type": "thinking",
        "thinking": "Paris, so call weather.",
        "signature": sign_thinking("Paris, so call weather."),
    }
    assert upstream_body(env)["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    second = await sdk.responses.create(
        model="claude-haiku-4-5",
        input=[
            {"role": "user", "content": question},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"},
        ],
        tools=[WEATHER],
        reasoning={"effort": "low"},
        store=False,
    )
    assert second.status == "completed"
    messages = upstream_body(env)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            thinking,
            {
                "type": "tool_use",
                "id": call.call_id,
                "name": "weather",
                "input": {"city": "Paris"},
            },
        ],
    }
    assert messages[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.call_id, "content": "Sunny, 21 C"}],
    }
    # Byte-identical: the block's JSON as the simulator serialises it is in the request bytes.
    assert orjson.dumps(thinking) in upstream_raw(env)


async def test_the_non_stream_answer_carries_the_same_items_as_the_stream(env: EdgeEnv) -> None:
    sdk = env.openai()
    prompt = '[[thinking: Hmm.]] [[reply: Done.]] [[tool: weather {"city": "Oslo"}]]'
    kwargs: Any = {
        "model": "claude-haiku-4-5",
        "input": prompt,
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
    }
    whole = await sdk.responses.create(**kwargs)
    async with sdk.responses.stream(**kwargs) as stream:
        streamed = await stream.get_final_response()

    def shape(response: Any) -> list[dict[str, Any]]:
        items = [item.model_dump(exclude_none=True) for item in response.output]
        for item in items:
            item["id"] = item["id"].rsplit("_", 1)[-1]  # the response id differs
        return items

    assert shape(whole) == shape(streamed)
    assert [i["type"] for i in shape(whole)] == ["reasoning", "message", "function_call"]


async def test_images_as_data_urls_and_urls_reach_the_upstream(env: EdgeEnv) -> None:
    await env.openai().responses.create(
        model="claude-haiku-4-5",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Compare"},
                    {
                        "type": "input_image",
                        "image_url": f"data:image/png;base64,{PNG}",
                        "detail": "auto",
                    },
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/a.jpg",
                        "detail": "auto",
                    },
                ],
            }
        ],
    )
    assert upstream_body(env)["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
    ]


async def test_max_output_tokens_reached_is_an_incomplete_response(env: EdgeEnv) -> None:
    sdk = env.openai()
    response = await sdk.responses.create(
        model="claude-haiku-4-5", input="[[tokens: 50]]", max_output_tokens=16
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    async with sdk.responses.stream(
        model="claude-haiku-4-5", input="[[tokens: 50]]", max_output_tokens=16
    ) as stream:
        kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.incomplete"


async def test_previous_response_id_is_a_clear_openai_400(env: EdgeEnv) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai().responses.create(
            model="claude-haiku-4-5", input="Hi", previous_response_id="resp_123"
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "previous_response_id"
    assert error["type"] == "invalid_request_error"
    assert "stores no responses" in error["message"]
    assert sim_requests(env.sim_url) == []
    assert await stream_count(env.bus) == 0


async def test_translation_errors_name_the_responses_fields(env: EdgeEnv) -> None:
    sdk = env.openai()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "Hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {"input": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{x"}]},
            "input[0].tool_calls[0].function.arguments",
        ),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.responses.create(model="claude-haiku-4-5", **extra)
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == param, (extra, body)


async def test_upstream_errors_come_back_in_openai_form(env: EdgeEnv) -> None:
    sdk = env.openai()
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.responses.create(model="claude-haiku-4-5", input="[[tool: ]]")
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"
    assert "simulator directive" in body["message"]
    [event] = await usage_events(env.bus, 1)
    assert event.route == "responses" and event.outcome == "upstream_error"
    assert event.status_code == 400


async def test_an_error_after_the_stream_started_is_a_failed_response(env: EdgeEnv) -> None:
    sdk = env.openai()
    async with sdk.responses.stream(
        model="claude-haiku-4-5", input="x [[tokens: 20]] [[fail: stream_error after=5]]"
    ) as stream:
        events = [event async for event in stream]
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error is not None and last.response.error.code == "server_error"
    assert "Overloaded" in last.response.error.message
    assert "response.output_text.delta" in [e.type for e in events]
    [event] = await usage_events(env.bus, 1)
    assert event.outcome == "stream_error" and event.usage.output_tokens > 0


async def test_a_response_is_billed_exactly_as_the_same_chat_completion(env: EdgeEnv) -> None:
    sdk = env.openai()
    prompt = "Bill me [[reply: Billed.]]"
    await sdk.responses.create(
        model="claude-haiku-4-5", instructions="Be brief.", input=prompt, max_output_tokens=40
    )
    await sdk.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        max_completion_tokens=40,
    )
    first, second = sim_requests(env.sim_url)
    assert first["raw"] == second["raw"]  # the same upstream request...
    via_responses, via_chat = await usage_events(env.bus, 2)
    assert (via_responses.route, via_chat.route) == ("responses", "openai")
    # ...so the same usage event, billed alike.
    assert via_responses.model_dump(include=BILLED) == via_chat.model_dump(include=BILLED)
    held = [a.model_dump(exclude={"request_id", "started_at"}) for a in env.billing.requests]
    assert held[0] == held[1]  # admitted (held) alike too


async def test_the_route_is_served_under_every_prefix_with_openai_errors(env: EdgeEnv) -> None:
    async with httpx.AsyncClient(base_url=env.url) as client:
        for path in ("/v1/responses", "/responses", "/api/proxy/v1/responses"):
            answer = await client.post(path, json={"model": "claude-haiku-4-5", "input": "Hi"})
            assert answer.status_code == 401, path
            assert answer.json()["error"]["type"] == "authentication_error", path
            assert "x-request-id" in answer.headers


async def test_a_refused_hold_extension_ends_the_stream_with_a_failed_response(
    env: EdgeEnv,
) -> None:
    small_hold(env)
    await serve_extensions(env.bus, grant=False)
    body = {"model": "claude-haiku-4-5", "stream": True, "input": LONG_STREAM}
    text = await stream_text(env, "/v1/responses", body)
    frames = [frame for frame in text.split("\n\n") if frame.startswith("event: ")]
    kinds = [frame.split("\n", 1)[0].removeprefix("event: ") for frame in frames]
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"
    assert "response.completed" not in kinds
    failed = orjson.loads(frames[-1].split("\ndata: ", 1)[1])
    assert failed["response"]["error"]["code"] == "insufficient_balance"
    (event,) = await usage_events(env.bus, 1)
    assert event.route == "responses" and event.outcome == "stream_error"
    assert 0 < event.usage.output_tokens < 300


STORE = {"edge_responses_store_bytes": 1_000_000}


@pytest.mark.parametrize("edge_settings_override", [STORE])
async def test_with_the_store_on_previous_response_id_continues_a_conversation(
    env: EdgeEnv,
) -> None:
    sdk = env.openai()
    question = 'Weather? [[thinking: Call weather.]] [[tool: weather {"city": "Rome"}]]'
    async with sdk.responses.stream(
        model="claude-haiku-4-5",
        input=question,
        tools=[WEATHER],
        reasoning={"effort": "low"},
    ) as stream:
        first = await stream.get_final_response()
    assert first.store is True
    call = first.output[-1]
    assert call.type == "function_call"
    second = await sdk.responses.create(
        model="claude-haiku-4-5",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Warm"}],
        tools=[WEATHER],
        reasoning={"effort": "low"},
    )
    assert second.previous_response_id == first.id
    thinking = {
        "type": "thinking",
        "thinking": "Call weather.",
        "signature": sign_thinking("Call weather."),
    }
    messages = upstream_body(env)["messages"]
    assert messages[0] == {"role": "user", "content": [{"type": "text", "text": question}]}
    assert messages[1]["content"][0] == thinking  # replayed from the store, byte-identical
    assert messages[1]["content"][1]["id"] == call.call_id
    assert messages[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.call_id, "content": "Warm"}],
    }
    third = await sdk.responses.create(
        model="claude-haiku-4-5", previous_response_id=second.id, input="Thanks [[reply: Bye.]]"
    )
    assert third.output_text == "Bye."
    assert len(upstream_body(env)["messages"]) == 5  # the whole chain, then the new question

    # Another account's key does not see them; a response kept out of the store is not found.
    other_key = make_key()
    await put_key(env.bus, other_key, key_record("acct_other"))
    unstored = await sdk.responses.create(model="claude-haiku-4-5", input="Hi", store=False)
    assert unstored.store is False
    for key, previous in ((other_key, first.id), (env.key, unstored.id)):
        with pytest.raises(openai.BadRequestError) as caught:
            await env.openai(key).responses.create(
                model="claude-haiku-4-5", previous_response_id=previous, input="More"
            )
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == "previous_response_id"
        assert body["message"] == f"Previous response with id '{previous}' not found."
