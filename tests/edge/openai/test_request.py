"""Golden tests of the request translation: each asserts the exact Anthropic body produced."""

from __future__ import annotations

from typing import Any

import pytest
from aiapi_edge.openai import (
    IGNORED_FIELDS,
    THINKING_BUDGETS,
    TranslatedRequest,
    TranslationError,
    to_anthropic,
)

from .support import ADAPTIVE_MODEL, BUDGET_MODEL, HELLO, HELLO_ANTHROPIC

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "claude-sonnet-4-6")
    body.setdefault("messages", HELLO)
    return to_anthropic(body, BUDGET_MODEL).anthropic_body


def error_of(body: dict[str, Any]) -> TranslationError:
    body.setdefault("model", "claude-sonnet-4-6")
    body.setdefault("messages", HELLO)
    with pytest.raises(TranslationError) as caught:
        to_anthropic(body, BUDGET_MODEL)
    return caught.value


def test_minimal_request_gets_the_default_max_tokens() -> None:
    result = to_anthropic({"model": "claude-sonnet-4-6", "messages": HELLO}, BUDGET_MODEL)
    assert result == TranslatedRequest(
        anthropic_body={
            "model": "claude-sonnet-4-6",
            "max_tokens": 4096,
            "messages": HELLO_ANTHROPIC,
        },
        stream=False,
        include_usage=False,
        model="claude-sonnet-4-6",
    )


def test_system_and_developer_messages_are_hoisted_in_order() -> None:
    body = translate(
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {
                "role": "developer",
                "content": [
                    {
                        "type": "text",
                        "text": "Big stable prefix",
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "Tail"},
                ],
            },
            {"role": "system", "content": ""},
        ]
    )
    assert body == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4096,
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Big stable prefix", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Tail"},
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_user_text_and_images() -> None:
    body = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.webp", "detail": "high"},
                    },
                    {"type": "text", "text": ""},
                ],
            }
        ]
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                },
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}},
            ],
        }
    ]


def test_pdf_file_part_becomes_a_document_block() -> None:
    body = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0x",
                        },
                    }
                ],
            }
        ]
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": "JVBERi0x",
                    },
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("data:image/tiff;base64,AAAA", "messages[0].content[0].image_url"),
        ("data:image/png,notbase64", "messages[0].content[0].image_url"),
        ("ftp://example.com/a.png", "messages[0].content[0].image_url"),
    ],
)
def test_unusable_image_urls_are_400s(url: str, param: str) -> None:
    error = error_of(
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ]
        }
    )
    assert error.param == param
    assert error.to_openai()["error"]["type"] == "invalid_request_error"


def test_assistant_tool_calls_become_tool_use_and_tool_messages_one_user_turn() -> None:
    body = translate(
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "Which is warmer?"},
        ]
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]


def test_tool_call_only_assistant_and_empty_arguments() -> None:
    body = translate(
        messages=[
            {"role": "user", "content": "Time?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": ""},
        ]
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c", "name": "now", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c"}]},
    ]


@pytest.mark.parametrize("arguments", ['{"city": ', "[1, 2]", "nonsense"])
def test_invalid_tool_call_arguments_are_a_400_naming_the_param(arguments: str) -> None:
    error = error_of(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": arguments},
                        }
                    ],
                },
            ]
        }
    )
    assert error.to_openai() == {
        "error": {
            "message": error.message,
            "type": "invalid_request_error",
            "param": "messages[1].tool_calls[0].function.arguments",
            "code": "invalid_tool_arguments",
        }
    }


def test_sent_back_thinking_blocks_come_first_byte_identical() -> None:
    signature = "EqQBCkYIARgCKkD+/sig==\n"
    body = translate(
        messages=[
            {"role": "user", "content": "Think, then call."},
            {
                "role": "assistant",
                "content": "Calling.",
                "reasoning_content": "Let me think about it",
                "thinking_blocks": [
                    {
                        "type": "thinking",
                        "thinking": "Let me think about it",
                        "signature": signature,
                        "index": 0,
                    },
                    {
                        "type": "redacted_thinking",
                        "data": "EmwKAhgBEgy3va3pzix/LafPsn4a",
                        "index": 1,
                    },
                    {"type": "thinking", "thinking": "unsigned, from elsewhere"},
                ],
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        ]
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Let me think about it", "signature": signature},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ],
    }


def test_reasoning_content_without_signed_blocks_is_dropped() -> None:
    body = translate(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b", "reasoning_content": "unsigned thoughts"},
        ]
    )
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "b"}]}


def test_consecutive_same_role_turns_are_merged() -> None:
    body = translate(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": ""},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "four"}],
                "thinking_blocks": [{"type": "redacted_thinking", "data": "R"}],
            },
            {"role": "user", "content": "five"},
            {"role": "tool", "tool_call_id": "x", "content": "six"},
        ]
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": "R"},
                {"type": "text", "text": "three"},
                {"type": "text", "text": "four"},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "x", "content": "six"},
                {"type": "text", "text": "five"},
            ],
        },
    ]


def test_tools_and_their_schemas() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    body = translate(
        tools=[
            {
                "type": "function",
                "function": {"name": "search", "description": "Find", "parameters": schema},
            },
            {"type": "function", "function": {"name": "now"}},
            {
                "type": "function",
                "function": {"name": "loose", "parameters": {"properties": {}}, "strict": True},
            },
        ]
    )
    assert body["tools"] == [
        {"name": "search", "description": "Find", "input_schema": schema},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        {"name": "loose", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


TOOL = {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "f"}},
            False,
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls(
    tool_choice: Any, parallel: Any, expected: dict[str, Any] | None
) -> None:
    body: dict[str, Any] = {"tools": [TOOL]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert translate(**body).get("tool_choice") == expected


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in translate(tool_choice="required", parallel_tool_calls=False)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200, "max_tokens": 100}, 200),
        ({"max_completion_tokens": None, "max_tokens": 100}, 100),
        ({}, 4096),
    ],
)
def test_max_tokens(fields: dict[str, Any], expected: int) -> None:
    assert translate(**fields)["max_tokens"] == expected


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("END", ["END"]),
        (["END", " ", "\n", "", "###"], ["END", "###"]),
        (["  "], None),
        (None, None),
    ],
)
def test_stop_sequences(stop: Any, expected: list[str] | None) -> None:
    assert translate(stop=stop).get("stop_sequences") == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": 1.7}, {"temperature": 1}),
        ({"temperature": -0.5}, {"temperature": 0}),
        ({"temperature": 0.3}, {"temperature": 0.3}),
        ({"top_p": 0.9}, {"top_p": 0.9}),
        ({"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2}),
    ],
)
def test_sampling_parameters(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    body = translate(**fields)
    assert {k: body[k] for k in ("temperature", "top_p") if k in body} == expected


def test_sampling_parameters_are_left_out_where_the_model_rejects_them() -> None:
    body = to_anthropic(
        {"model": "m", "messages": HELLO, "temperature": 0.5, "top_p": 0.5}, ADAPTIVE_MODEL
    ).anthropic_body
    assert body == {"model": "m", "max_tokens": 8192, "messages": HELLO_ANTHROPIC}


@pytest.mark.parametrize("n", [2, 0, "1", True])
def test_n_other_than_one_is_a_400_naming_n(n: Any) -> None:
    assert error_of({"n": n}).param == "n"


def test_n_of_one_is_fine() -> None:
    assert translate(n=1) == translate()


@pytest.mark.parametrize("effort", list(THINKING_BUDGETS))
def test_reasoning_effort_becomes_a_budget_on_older_models(effort: str) -> None:
    budget = THINKING_BUDGETS[effort]
    body = translate(reasoning_effort=effort, max_tokens=1000, temperature=0.5)
    assert body == {
        "model": "claude-sonnet-4-6",
        "max_tokens": budget + 1000,
        "messages": HELLO_ANTHROPIC,
        "thinking": {"type": "enabled", "budget_tokens": budget},
    }


def test_budget_below_max_tokens_leaves_max_tokens_alone() -> None:
    body = translate(reasoning_effort="low", max_completion_tokens=30000)
    assert (body["max_tokens"], body["thinking"]) == (
        30000,
        {"type": "enabled", "budget_tokens": 2048},
    )


@pytest.mark.parametrize(
    ("effort", "anthropic_effort"),
    [
        ("minimal", "low"),
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("xhigh", "xhigh"),
    ],
)
def test_reasoning_effort_becomes_adaptive_thinking_with_effort(
    effort: str, anthropic_effort: str
) -> None:
    body = to_anthropic(
        {"model": "m", "messages": HELLO, "reasoning_effort": effort}, ADAPTIVE_MODEL
    ).anthropic_body
    assert body == {
        "model": "m",
        "max_tokens": 8192,
        "messages": HELLO_ANTHROPIC,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": anthropic_effort},
    }


def test_reasoning_effort_none_means_no_thinking() -> None:
    assert translate(reasoning_effort="none") == translate()


def test_unknown_reasoning_effort_is_a_400() -> None:
    assert error_of({"reasoning_effort": "extreme"}).param == "reasoning_effort"


def test_forced_tool_use_turns_thinking_off() -> None:
    body = translate(reasoning_effort="high", tools=[TOOL], tool_choice="required", temperature=0.1)
    assert body == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4096,
        "messages": HELLO_ANTHROPIC,
        "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "any"},
        "temperature": 0.1,
    }


def test_response_format_json_schema_becomes_output_config_format() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "additionalProperties": False,
    }
    body = to_anthropic(
        {
            "model": "m",
            "messages": HELLO,
            "reasoning_effort": "medium",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": True, "schema": schema},
            },
        },
        ADAPTIVE_MODEL,
    ).anthropic_body
    assert body["output_config"] == {
        "effort": "medium",
        "format": {"type": "json_schema", "schema": schema},
    }


@pytest.mark.parametrize("kind", ["json_object", "text"])
def test_response_format_without_a_schema_is_ignored(kind: str) -> None:
    assert translate(response_format={"type": kind}) == translate()


def test_user_becomes_metadata_user_id() -> None:
    assert translate(user="customer-42")["metadata"] == {"user_id": "customer-42"}
    assert translate(safety_identifier="hash-1")["metadata"] == {"user_id": "hash-1"}


def test_stream_and_include_usage() -> None:
    result = to_anthropic(
        {
            "model": "m",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        BUDGET_MODEL,
    )
    assert result.anthropic_body["stream"] is True
    assert (result.stream, result.include_usage, result.model) == (True, True, "m")
    no_usage = to_anthropic({"model": "m", "messages": HELLO, "stream": True}, BUDGET_MODEL)
    assert (no_usage.stream, no_usage.include_usage) == (True, False)
    not_streamed = to_anthropic(
        {"model": "m", "messages": HELLO, "stream_options": {"include_usage": True}}, BUDGET_MODEL
    )
    assert (not_streamed.stream, not_streamed.include_usage) == (False, False)
    assert "stream" not in not_streamed.anthropic_body


def test_cache_breakpoints_reach_the_upstream() -> None:
    ephemeral = {"type": "ephemeral"}
    hour = {"type": "ephemeral", "ttl": "1h"}
    body = translate(
        messages=[
            {"role": "system", "content": "Long system prompt", "cache_control": hour},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Document...", "cache_control": ephemeral},
                    {"type": "text", "text": "Question?"},
                ],
            },
            {"role": "assistant", "content": "Answer.", "cache_control": ephemeral},
            {"role": "tool", "tool_call_id": "x", "content": "result", "cache_control": ephemeral},
            {"role": "user", "content": "Next", "cache_control": ephemeral},
        ],
        tools=[
            {"type": "function", "function": {"name": "a"}, "cache_control": ephemeral},
            {"type": "function", "function": {"name": "b", "cache_control": hour}},
        ],
    )
    assert body["system"] == [{"type": "text", "text": "Long system prompt", "cache_control": hour}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Document...", "cache_control": ephemeral},
                {"type": "text", "text": "Question?"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Answer.", "cache_control": ephemeral}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "x",
                    "content": "result",
                    "cache_control": ephemeral,
                },
                {"type": "text", "text": "Next", "cache_control": ephemeral},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "name": "a",
            "input_schema": {"type": "object", "properties": {}},
            "cache_control": ephemeral,
        },
        {"name": "b", "input_schema": {"type": "object", "properties": {}}, "cache_control": hour},
    ]


def test_unsupported_fields_are_ignored() -> None:
    noise: dict[str, Any] = dict.fromkeys(IGNORED_FIELDS, 1)
    noise["some_future_field"] = {"x": 1}
    assert translate(**noise) == translate()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "only system"}]}, "messages"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0].type",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_malformed_requests_name_the_param(body: dict[str, Any], param: str) -> None:
    assert error_of(body).param == param
