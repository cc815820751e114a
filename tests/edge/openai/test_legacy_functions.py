"""Legacy ``functions`` / ``function_call`` (the pre-tools OpenAI API), translated both ways."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiapi_edge.openai import ChunkTranslator, TranslationError, to_anthropic, to_openai_completion

from . import events as ev
from .support import BUDGET_MODEL, HELLO

WEATHER = {
    "name": "weather",
    "description": "Weather now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def translated(body: dict[str, Any]) -> Any:
    return to_anthropic({"model": "m", "messages": HELLO, **body}, BUDGET_MODEL)


def test_functions_become_tools_and_function_call_a_tool_choice() -> None:
    result = translated({"functions": [WEATHER], "function_call": {"name": "weather"}})
    assert result.legacy_functions is True
    assert result.anthropic_body["tools"] == [
        {
            "name": "weather",
            "description": "Weather now.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert result.anthropic_body["tool_choice"] == {
        "type": "tool",
        "name": "weather",
        "disable_parallel_tool_use": True,
    }
    auto = translated({"functions": [WEATHER]}).anthropic_body
    assert auto["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    none = translated({"functions": [WEATHER], "function_call": "none"}).anthropic_body
    assert none["tool_choice"] == {"type": "none"}
    assert translated({}).legacy_functions is False


def test_a_function_call_and_its_function_message_become_tool_use_and_tool_result() -> None:
    body = translated(
        {
            "functions": [WEATHER],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {"role": "function", "name": "weather", "content": "Sunny"},
            ],
        }
    ).anthropic_body
    assert body["messages"][1:] == [
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
                {"type": "tool_result", "tool_use_id": "call_function_1", "content": "Sunny"}
            ],
        },
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"functions": [WEATHER], "tools": []}, "functions"),
        ({"functions": []}, "functions"),
        ({"functions": [{"description": "x"}]}, "functions[0].name"),
        ({"functions": [WEATHER], "function_call": "required"}, "function_call"),
        ({"functions": [WEATHER], "function_call": {"name": 3}}, "function_call.name"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "function", "content": "y"}]},
            "messages[1].role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "function_call": {"name": "f", "arguments": "{"}},
                ]
            },
            "messages[1].function_call.arguments",
        ),
    ],
)
def test_bad_legacy_requests(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translated(body)
    assert caught.value.param == param


MESSAGE = {
    "id": "msg_01",
    "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 5, "output_tokens": 7},
}


def test_the_answer_says_function_call() -> None:
    completion = to_openai_completion(MESSAGE, created=1, request_model="m", legacy_functions=True)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Checking.",
        "refusal": None,
        "function_call": {"name": "weather", "arguments": '{"city":"Paris"}'},
    }
    modern = to_openai_completion(MESSAGE, created=1, request_model="m")["choices"][0]
    assert modern["finish_reason"] == "tool_calls" and "function_call" not in modern["message"]


def test_the_stream_says_function_call() -> None:
    translator = ChunkTranslator(created=1, request_model="m", legacy_functions=True)
    stream = [
        ev.message_start(),
        *ev.tool_block(0, "toolu_1", "weather", '{"city": ', '"Paris"}'),
        ev.message_delta("tool_use", {"output_tokens": 7}),
        ev.message_stop(),
    ]
    chunks = [c for name, data in stream for c in translator.feed(name, data)]
    deltas = [orjson.loads(orjson.dumps(c))["choices"][0] for c in chunks]
    assert [d["delta"].get("function_call") for d in deltas] == [
        None,
        {"name": "weather", "arguments": ""},
        {"arguments": '{"city": '},
        {"arguments": '"Paris"}'},
        None,
    ]
    assert deltas[-1]["finish_reason"] == "function_call"
    assert all("tool_calls" not in d["delta"] for d in deltas)
