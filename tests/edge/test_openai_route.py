"""The OpenAI Chat Completions route through the official ``openai`` SDK, the simulator upstream."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from aiapi_shared.admission import AdmissionReply

from .conftest import EdgeEnv
from .support import BILLED, sim_requests, usage_events

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "clock"}},
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def upstream_body(env: EdgeEnv) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(sim_requests(env.sim_url)[-1]["raw"])
    return parsed


async def test_a_plain_completion_with_usage_and_request_ids(env: EdgeEnv) -> None:
    sdk = env.openai()
    raw = await sdk.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi [[reply: Hello there.]]"},
        ],
        max_tokens=30,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "claude-haiku-4-5"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert raw.headers["x-request-id"] == raw.headers["request-id"]
    assert upstream_body(env) == {
        "model": "claude-haiku-4-5",
        "max_tokens": 30,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi [[reply: Hello there.]]"}]}
        ],
        "system": [{"type": "text", "text": "Be brief."}],
    }


async def test_the_stream_helper_accumulates_several_streamed_tool_calls(env: EdgeEnv) -> None:
    sdk = env.openai(prefix="")  # tools that call /chat/completions without /v1
    async with sdk.chat.completions.stream(
        model="claude-sonnet-4-6",
        messages=[
            {
                "role": "user",
                "content": 'Go [[tool: weather {"city": "Paris"}]] [[tool: weather {"city": "Oslo"}]] [[tool: clock]]',
            }
        ],
        tools=TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("weather", '{"city":"Paris"}'),
        ("weather", '{"city":"Oslo"}'),
        ("clock", "{}"),
    ]
    assert len({c.id for c in calls}) == 3
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.prompt_tokens > 0


async def test_golden_stream_request_and_chunks(env: EdgeEnv) -> None:
    request = {
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "x [[reply: Hi!]]"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 10,
        "stop": ["END", "  "],
        "temperature": 1.7,
        "user": "u-1",
    }
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            env.url + "/v1/chat/completions",
            json=request,
            headers={"authorization": f"Bearer {env.key}"},
        )
    assert upstream_body(env) == {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x [[reply: Hi!]]"}]}],
        "stop_sequences": ["END"],
        "temperature": 1.0,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    frames = [line for line in answer.text.split("\n\n") if line]
    assert frames[-1] == "data: [DONE]"
    chunks = [orjson.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    envelope = {k: chunks[0][k] for k in ("id", "created")}
    assert envelope["id"].startswith("chatcmpl-")
    base = {
        **envelope,
        "object": "chat.completion.chunk",
        "model": "claude-haiku-4-5",
        "system_fingerprint": None,
    }
    usage = chunks[-1]["usage"]
    assert chunks == [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            "usage": None,
        },
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"content": "Hi!"}, "logprobs": None, "finish_reason": None}
            ],
            "usage": None,
        },
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            "usage": None,
        },
        {**base, "choices": [], "usage": usage},
    ]
    assert usage["completion_tokens"] == 1
    assert usage["prompt_tokens"] == usage["total_tokens"] - 1


async def test_images_become_base64_and_url_sources(env: EdgeEnv) -> None:
    sdk = env.openai()
    await sdk.chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    content = upstream_body(env)["messages"][0]["content"]
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert content[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


async def test_a_thinking_and_tool_multi_turn_round_trip(env: EdgeEnv) -> None:
    sdk = env.openai()
    question = {
        "role": "user",
        "content": 'Weather? [[thinking: Paris it is.]] [[tool: weather {"city": "Paris"}]]',
    }
    first = await sdk.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[question],  # type: ignore[list-item]
        tools=TOOLS,
        reasoning_effort="low",
        max_tokens=500,
    )
    message = first.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == "Paris it is."
    assert extra["thinking_blocks"][0]["signature"]
    call = (message.tool_calls or [])[0]
    second = await sdk.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[
            question,  # type: ignore[list-item]
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call.model_dump()],
                "thinking_blocks": extra["thinking_blocks"],  # type: ignore[typeddict-unknown-key]
            },
            {"role": "tool", "tool_call_id": call.id, "content": "18C [[reply: It is 18C.]]"},
        ],
        tools=TOOLS,
        reasoning_effort="low",
        max_tokens=500,
    )
    # The simulator verifies the thinking signature sent back; a lost or altered one is a 400.
    assert second.choices[0].message.content == "It is 18C."
    assistant = upstream_body(env)["messages"][1]["content"]
    assert assistant[0]["type"] == "thinking"
    assert assistant[0]["signature"] == extra["thinking_blocks"][0]["signature"]


async def test_errors_in_openai_form(env: EdgeEnv) -> None:
    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        await env.openai(key="sk-cc-wrong0000000000").chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}]
        )
    assert unauthenticated.value.response.headers["x-request-id"].startswith("req_")
    sdk = env.openai()
    with pytest.raises(openai.BadRequestError) as bad_n:
        await sdk.chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}], n=2
        )
    assert bad_n.value.param == "n"
    with pytest.raises(openai.BadRequestError) as unknown:
        await sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert "claude-haiku-4-5" in unknown.value.message
    env.billing.reply = AdmissionReply(decision="insufficient_balance")
    with pytest.raises(openai.APIStatusError) as broke:
        await sdk.chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}]
        )
    assert broke.value.status_code == 402
    assert broke.value.type == "insufficient_balance"  # type: ignore[attr-defined]


async def test_an_error_after_the_stream_started_reaches_the_sdk(env: EdgeEnv) -> None:
    sdk = env.openai()

    async def consume() -> None:
        async with sdk.chat.completions.stream(
            model="claude-haiku-4-5",
            messages=[
                {"role": "user", "content": "x [[tokens: 20]] [[fail: stream_error after=5]]"}
            ],
        ) as stream:
            async for _ in stream:
                pass

    with pytest.raises(openai.APIError, match="Overloaded"):
        await consume()


async def test_an_openai_request_is_billed_like_the_same_anthropic_request(env: EdgeEnv) -> None:
    await env.openai().chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[{"role": "system", "content": "Brief."}, {"role": "user", "content": "Hi there"}],
        max_tokens=40,
    )
    translated = sim_requests(env.sim_url)[-1]["raw"]
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            env.url + "/v1/messages",
            content=translated,
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )
    assert answer.status_code == 200
    via_openai, via_anthropic = await usage_events(env.bus, 2)
    assert (via_openai.route, via_anthropic.route) == ("openai", "anthropic")
    assert via_openai.model_dump(include=BILLED) == via_anthropic.model_dump(include=BILLED)
    assert via_openai.usage.input_tokens > 0


async def test_models_parse_in_both_sdks(env: EdgeEnv) -> None:
    anthropic_models = [m.id async for m in env.anthropic().models.list()]
    openai_models = [m.id async for m in env.openai().models.list()]
    assert (
        anthropic_models
        == openai_models
        == ["claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"]
    )
    one = await env.openai().models.retrieve("claude-haiku-4-5")
    assert one.owned_by == "anthropic"
    info = await env.anthropic().models.retrieve("claude-haiku-4-5")
    assert info.display_name
    with pytest.raises(openai.NotFoundError):
        await env.openai().models.retrieve("gpt-4o")


async def test_streamed_thinking_and_a_tool_call_accumulate_in_the_stream_helper(
    env: EdgeEnv,
) -> None:
    sdk = env.openai()
    async with sdk.chat.completions.stream(
        model="claude-haiku-4-5",
        messages=[
            {
                "role": "user",
                "content": 'Go [[thinking: Think first.]] [[reply: Calling.]] [[tool: clock {"tz": "UTC"}]]',
            }
        ],
        tools=TOOLS,
        reasoning_effort="low",
        max_tokens=300,
    ) as stream:
        final = await stream.get_final_completion()
    message = final.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == "Think first."
    assert extra["thinking_blocks"][0]["type"] == "thinking"
    assert extra["thinking_blocks"][0]["signature"]
    assert message.content == "Calling."
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("clock", '{"tz":"UTC"}')
    ]
    [event] = await usage_events(env.bus, 1)
    assert event.route == "openai" and event.usage.output_tokens > 0


LEGACY_WEATHER: Any = {
    "name": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_legacy_functions_round_trip_through_the_sdk(env: EdgeEnv) -> None:
    sdk = env.openai()
    question = 'Paris? [[tool: weather {"city": "Paris"}]]'
    first = await sdk.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": question}],
        functions=[LEGACY_WEATHER],
    )
    choice = first.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "weather"
    assert choice.message.function_call.arguments == '{"city":"Paris"}'
    assert upstream_body(env)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    second = await sdk.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "weather", "arguments": '{"city":"Paris"}'},
            },
            {"role": "function", "name": "weather", "content": "Sunny [[reply: It is sunny.]]"},
        ],
        functions=[LEGACY_WEATHER],
    )
    assert second.choices[0].message.content == "It is sunny."
    assert second.choices[0].finish_reason == "stop"
    assert upstream_body(env)["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_function_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_function_1",
                    "content": "Sunny [[reply: It is sunny.]]",
                }
            ],
        },
    ]


async def test_legacy_functions_stream_a_function_call(env: EdgeEnv) -> None:
    stream = await env.openai().chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": 'Go [[tool: weather {"city": "Oslo"}]]'}],
        functions=[LEGACY_WEATHER],
        function_call={"name": "weather"},
        stream=True,
    )
    name, arguments, finish = "", "", None
    async for chunk in stream:
        delta = chunk.choices[0].delta
        assert not delta.tool_calls
        if delta.function_call is not None:
            name += delta.function_call.name or ""
            arguments += delta.function_call.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert (name, arguments, finish) == ("weather", '{"city":"Oslo"}', "function_call")
    assert upstream_body(env)["tool_choice"]["name"] == "weather"


async def test_models_under_every_openai_base(env: EdgeEnv) -> None:
    sold = ["claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"]
    for prefix in ("/api/proxy/v1", "/api/proxy", "/v1", ""):
        sdk = env.openai(prefix=prefix)
        assert [m.id async for m in sdk.models.list()] == sold, prefix
        assert (await sdk.models.retrieve("claude-haiku-4-5")).owned_by == "anthropic"
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.models.retrieve("gpt-4o")
        body = missing.value.body
        assert isinstance(body, dict), prefix
        assert body["param"] == "model" and body["type"] == "invalid_request_error"
        assert "'gpt-4o' does not exist" in body["message"]


async def test_a_missing_model_in_the_anthropic_form_for_anthropic_clients(env: EdgeEnv) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        await env.anthropic().models.retrieve("gpt-4o")
    body = missing.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
