"""The official ``openai`` SDK accepts what the translation produces.

Two levels: the SDK's own stream accumulator (``ChatCompletionStreamState``, the engine behind
``chat.completions.stream()``) fed our chunks one by one, and the whole client talking to an
in-process handler (``httpx2.MockTransport``, the SDK's own HTTP library) that does what the edge route will do: translate the
request, play an Anthropic stream through :class:`ChunkTranslator`, write SSE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from aiapi_edge.openai import ChunkTranslator, to_anthropic, to_openai_completion
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion

from . import events as ev
from .support import ADAPTIVE_MODEL, function_calls

CREATED = 1_700_000_000

THINKING_AND_TOOLS: list[ev.Event] = [
    ev.message_start(),
    *ev.thinking_block(0, "EqQBCkYIBhgCKkD/sig+/==", "The user wants ", "two cities."),
    *ev.text_block(1, "Checking ", "both."),
    *ev.tool_block(2, "toolu_01", "weather", '{"ci', 'ty": "Pa', 'ris", "units": ["C"', "]}"),
    *ev.tool_block(3, "toolu_02", "weather", '{"city": ', '"Zürich"}'),
    *ev.tool_block(4, "toolu_03", "clock"),
    ev.message_delta("tool_use", {"output_tokens": 99}),
    ev.message_stop(),
]


def translate_stream(stream: Iterable[ev.Event], *, include_usage: bool) -> list[dict[str, Any]]:
    translator = ChunkTranslator(
        created=CREATED, request_model="claude-sonnet-4-6", include_usage=include_usage
    )
    chunks: list[dict[str, Any]] = []
    for name, data in stream:
        chunks.extend(translator.feed(name, data))
    chunks.extend(translator.finish())
    return chunks


def accumulate(chunks: list[dict[str, Any]]) -> ParsedChatCompletion[None]:
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for raw in chunks:
        # Over the wire and back, as the client would see it.
        state.handle_chunk(ChatCompletionChunk.model_validate(orjson.loads(orjson.dumps(raw))))
    return state.get_final_completion()


def assert_thinking_and_tools(completion: ChatCompletion) -> None:
    choice = completion.choices[0]
    message = choice.message
    assert choice.finish_reason == "tool_calls"
    assert message.role == "assistant"
    assert message.content == "Checking both."
    assert [(i, name, json.loads(args)) for i, name, args in function_calls(message)] == [
        ("toolu_01", "weather", {"city": "Paris", "units": ["C"]}),
        ("toolu_02", "weather", {"city": "Zürich"}),
        ("toolu_03", "clock", {}),
    ]
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == "The user wants two cities."
    assert [{k: v for k, v in b.items() if k != "index"} for b in extra["thinking_blocks"]] == [
        {
            "type": "thinking",
            "thinking": "The user wants two cities.",
            "signature": "EqQBCkYIBhgCKkD/sig+/==",
        }
    ]


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_state_accumulates_text_tools_and_reasoning(include_usage: bool) -> None:
    completion = accumulate(translate_stream(THINKING_AND_TOOLS, include_usage=include_usage))
    assert_thinking_and_tools(completion)
    assert completion.id == "chatcmpl-01ABC"
    if include_usage:
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (25, 99)
    else:
        assert completion.usage is None


def test_stream_state_accepts_several_thinking_blocks() -> None:
    stream = [
        ev.message_start(),
        *ev.thinking_block(0, "s1", "a"),
        *ev.tool_block(1, "t1", "f", "{}"),
        *ev.thinking_block(2, "s2", "b"),
        ev.block_start(3, {"type": "redacted_thinking", "data": "R"}),
        ev.block_stop(3),
        *ev.text_block(4, "x"),
        ev.message_delta("end_turn", {"output_tokens": 5}),
        ev.message_stop(),
    ]
    extra = (
        accumulate(translate_stream(stream, include_usage=False)).choices[0].message.model_extra
        or {}
    )
    assert extra["thinking_blocks"] == [
        {"index": 0, "type": "thinking", "thinking": "a", "signature": "s1"},
        {"index": 1, "type": "thinking", "thinking": "b", "signature": "s2"},
        {"index": 2, "type": "redacted_thinking", "data": "R"},
    ]
    assert extra["reasoning_content"] == "ab"


# -- the whole client ---------------------------------------------------------------------------


def sse(chunks: Iterable[dict[str, Any]], *, done: bool = True) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


def client_for(handler: Any) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-cc-test",
        base_url="http://edge.test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_sdk_stream_helper_against_translated_stream() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        translated = to_anthropic(json.loads(request.content), ADAPTIVE_MODEL)
        seen.append(translated.anthropic_body)
        chunks = translate_stream(THINKING_AND_TOOLS, include_usage=translated.include_usage)
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse(chunks)
        )

    with (
        client_for(handler) as client,
        client.chat.completions.stream(
            model="claude-sonnet-4-6",
            messages=[{"role": "user", "content": "Weather in Paris and Zürich? And the time."}],
            tools=[WEATHER_TOOL],
            reasoning_effort="high",
            stream_options={"include_usage": True},
        ) as stream,
    ):
        kinds = [event.type for event in stream]
        completion = stream.get_final_completion()
    assert_thinking_and_tools(completion)
    assert kinds.count("tool_calls.function.arguments.done") == 3
    assert kinds.count("content.done") == 1
    assert completion.usage is not None
    assert completion.usage.total_tokens == 124
    assert seen == [
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 8192,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather in Paris and Zürich? And the time."}
                    ],
                }
            ],
            "tools": [
                {
                    "name": "weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"},
            "stream": True,
        }
    ]


def test_sdk_raises_on_an_error_after_the_stream_started() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        translator = ChunkTranslator(created=CREATED, request_model="claude-sonnet-4-6")
        out: list[dict[str, Any]] = []
        for name, data in [ev.message_start(), *ev.text_block(0, "partial")[:2]]:
            out.extend(translator.feed(name, data))
        out.extend(
            translator.feed(
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            )
        )
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse(out, done=False)
        )

    with client_for(handler) as client:
        stream = client.chat.completions.create(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="Overloaded") as caught:
            for _ in stream:
                pass
    assert caught.value.body == {
        "message": "Overloaded",
        "type": "overloaded_error",
        "param": None,
        "code": "overloaded",
    }


def test_sdk_parses_a_translated_non_stream_completion() -> None:
    anthropic_message = {
        "id": "msg_9",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [
            {"type": "thinking", "thinking": "Think.", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 5},
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = to_openai_completion(
            anthropic_message, created=CREATED, request_model="claude-sonnet-4-6"
        )
        return httpx2.Response(200, json=body)

    with client_for(handler) as client:
        completion = client.chat.completions.create(
            model="claude-sonnet-4-6",
            messages=[{"role": "user", "content": "hi"}],
            tools=[WEATHER_TOOL],
        )
    message = completion.choices[0].message
    assert message.content is None
    assert function_calls(message) == [("toolu_9", "weather", '{"city":"Oslo"}')]
    assert (message.model_extra or {})["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Think.", "signature": "sig"}
    ]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 8
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 5


def test_the_accumulator_would_notice_a_repeated_id_or_role() -> None:
    """Why the rules matter: the SDK concatenates repeated strings, so a sloppy stream corrupts."""
    chunks = translate_stream(THINKING_AND_TOOLS, include_usage=False)
    sloppy = [json.loads(json.dumps(c)) for c in chunks]
    for c in sloppy:
        delta = c["choices"][0]["delta"]
        for call in delta.get("tool_calls", []):
            call["id"] = f"toolu_0{call['index'] + 1}"
    message = accumulate(sloppy).choices[0].message
    assert message.tool_calls is not None
    assert message.tool_calls[0].id != "toolu_01"
