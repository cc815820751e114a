"""Golden tests of the non-stream response translation."""

from __future__ import annotations

from typing import Any

import pytest
from aiapi_edge.openai import FINISH_REASONS, finish_reason, to_openai_completion

USAGE = {"input_tokens": 10, "output_tokens": 20}


def message(
    content: list[dict[str, Any]], stop_reason: str = "end_turn", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": USAGE,
        **extra,
    }


def translate(msg: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return to_openai_completion(
        msg, created=1_700_000_000, request_model="claude-sonnet-4-6", **kwargs
    )


def test_text_answer() -> None:
    assert translate(
        message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}])
    ) == {
        "id": "chatcmpl-01XYZ",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "claude-sonnet-4-6",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        },
    }


def test_tool_calls_only_have_null_content() -> None:
    result = translate(
        message(
            [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "weather",
                    "input": {"city": "Zürich", "n": [1, 2]},
                },
                {"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}},
            ],
            "tool_use",
        )
    )
    assert result["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Zürich","n":[1,2]}'},
                },
                {
                    "id": "toolu_3",
                    "type": "function",
                    "function": {"name": "now", "arguments": "{}"},
                },
            ],
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }


def test_thinking_becomes_reasoning_content_and_thinking_blocks() -> None:
    result = translate(
        message(
            [
                {"type": "thinking", "thinking": "First, ", "signature": "sig-A"},
                {"type": "redacted_thinking", "data": "REDACTED=="},
                {"type": "thinking", "thinking": "then.", "signature": "sig-B"},
                {"type": "text", "text": "Answer"},
                {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}},
            ]
        ),
        thinking_tokens=12,
    )
    assert result["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Answer",
        "refusal": None,
        "reasoning_content": "First, then.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "First, ", "signature": "sig-A"},
            {"type": "redacted_thinking", "data": "REDACTED=="},
            {"type": "thinking", "thinking": "then.", "signature": "sig-B"},
        ],
    }
    assert result["usage"]["completion_tokens_details"] == {"reasoning_tokens": 12}


def test_empty_answer_has_empty_string_content() -> None:
    result = translate(message([], "max_tokens"))
    assert result["choices"][0]["message"]["content"] == ""
    assert result["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop_reason: str | None, expected: str) -> None:
    assert finish_reason(stop_reason) == expected
    if stop_reason is not None and stop_reason in FINISH_REASONS:
        assert translate(message([], stop_reason))["choices"][0]["finish_reason"] == expected
