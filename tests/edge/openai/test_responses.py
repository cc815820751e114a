"""Golden tests of the Responses API translation, both ways, and the SDK's own accumulator.

Request → Anthropic body (:func:`to_anthropic_from_responses`), Anthropic message → ``response``
(:func:`to_response`), Anthropic stream → Responses events (:class:`ResponseEvents`) fed to the
official SDK's ``ResponseStreamState`` (the engine of ``responses.stream()``), and the sealed
thinking block that must come back byte-identical.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiapi_edge.openai import TranslationError
from aiapi_edge.openai.responses_items import open_thinking, responses_usage, seal_thinking
from aiapi_edge.openai.responses_request import to_anthropic_from_responses
from aiapi_edge.openai.responses_response import to_response
from aiapi_edge.openai.responses_stream import ResponseEvents
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from . import events as ev
from .support import ADAPTIVE_MODEL, BUDGET_MODEL

RESP = "resp_0123abcd"
THINKING = {"type": "thinking", "thinking": "Two cities.", "signature": "EqQBCkYIBhgC/sig+=="}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
SEALED = seal_thinking(THINKING)

WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "Weather now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
AGENTS = {
    "type": "namespace",
    "name": "agents",
    "description": "Sub-agents.",
    "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object"}}],
}


def translate(body: dict[str, Any], traits: Any = BUDGET_MODEL) -> dict[str, Any]:
    return to_anthropic_from_responses({"model": "claude-x", **body}, traits).anthropic_body


def test_a_whole_conversation_with_thinking_tools_and_images() -> None:
    translated = to_anthropic_from_responses(
        {
            "model": "claude-x",
            "instructions": "You are terse.",
            "input": [
                {"type": "message", "role": "developer", "content": "Use tools."},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Weather?"},
                        {"type": "input_image", "image_url": "https://example.com/map.png"},
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": SEALED},
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
                },
                {
                    "type": "function_call",
                    "call_id": "toolu_1",
                    "name": "weather",
                    "arguments": '{"city": "Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "toolu_2",
                    "namespace": "agents",
                    "name": "spawn",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "toolu_1", "output": "Sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "toolu_2",
                    "output": [{"type": "input_text", "text": "spawned"}],
                },
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [WEATHER, AGENTS, {"type": "web_search", "external_web_access": False}],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "max_output_tokens": 1000,
            "user": "u-42",
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "stream": True,
        },
        BUDGET_MODEL,
    )
    assert translated.stream is True
    assert translated.namespaced == {"agents__spawn": ("agents", "spawn")}
    assert translated.anthropic_body == {
        "model": "claude-x",
        "max_tokens": 1000 + 8192,
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Use tools."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/map.png"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    THINKING,
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "agents__spawn", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "spawned"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [
            {
                "name": "weather",
                "description": "Weather now.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
            {"name": "agents__spawn", "input_schema": {"type": "object"}},
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 8192},
        "metadata": {"user_id": "u-42"},
        "stream": True,
    }


def test_the_sealed_thinking_block_comes_back_byte_identical() -> None:
    for block in (THINKING, REDACTED, {**THINKING, "thinking": 'Ünïcode ✓ \n"quoted"'}):
        sealed = seal_thinking(block)
        assert open_thinking(sealed) == block
        body = translate(
            {
                "input": [
                    {"role": "user", "content": "Hi"},
                    {"type": "reasoning", "summary": [], "encrypted_content": sealed},
                    {"role": "assistant", "content": "Yes"},
                    {"role": "user", "content": "And?"},
                ]
            }
        )
        assert orjson.dumps(body["messages"][1]["content"][0]) == orjson.dumps(block)


def test_reasoning_without_this_gateways_seal_is_left_out() -> None:
    for sealed in (None, "gAAAAABo-openai-opaque", seal_thinking({"type": "text", "text": "x"})):
        body = translate(
            {
                "input": [
                    {"role": "user", "content": "Hi"},
                    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}]}
                    | ({"encrypted_content": sealed} if sealed else {}),
                    {"role": "assistant", "content": "Yes"},
                ]
            }
        )
        assert body["messages"][1] == {
            "role": "assistant",
            "content": [{"type": "text", "text": "Yes"}],
        }


def test_adaptive_models_get_adaptive_thinking_and_effort() -> None:
    body = translate({"input": "Hi", "reasoning": {"effort": "high"}}, ADAPTIVE_MODEL)
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "high"}
    assert "thinking" not in translate({"input": "Hi", "reasoning": {"summary": "auto"}})
    assert "thinking" not in translate({"input": "Hi", "reasoning": {"effort": "none"}})


def test_text_format_json_schema_and_sampling() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = translate(
        {
            "input": "Hi",
            "text": {"format": {"type": "json_schema", "name": "A", "schema": schema}},
            "temperature": 1.5,
            "top_p": 0.5,
        }
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert body["temperature"] == 1  # clamped, and top_p left out, as on the chat route
    assert "top_p" not in body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "Hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "Hi", "conversation": "conv_1"}, "conversation"),
        ({"input": "Hi", "background": True}, "background"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": "Hi", "max_output_tokens": -1}, "max_output_tokens"),
        ({"input": "Hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "Hi", "tools": [WEATHER, WEATHER]}, "tools"),
        ({"input": "Hi", "tools": [WEATHER], "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].file_data",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output",
        ),
    ],
)
def test_bad_requests_name_the_responses_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(body)
    assert caught.value.param == param
    assert "messages" not in caught.value.message


MESSAGE: dict[str, Any] = {
    "id": "msg_01ABC",
    "type": "message",
    "role": "assistant",
    "content": [
        THINKING,
        REDACTED,
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Zürich"}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        {"type": "tool_use", "id": "toolu_02", "name": "agents__spawn", "input": {}},
    ],
    "stop_reason": "tool_use",
    "usage": {
        "input_tokens": 10,
        "output_tokens": 30,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 5,
    },
}
ECHO = to_anthropic_from_responses({"model": "m", "input": "Hi"}, BUDGET_MODEL).echo


def test_the_response_repeats_the_requests_settings() -> None:
    assert ECHO == {
        "instructions": None,
        "max_output_tokens": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "user": None,
    }
    echo = to_anthropic_from_responses(
        {
            "model": "m",
            "input": "Hi",
            "instructions": "Brief.",
            "tools": [WEATHER],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "reasoning": {"effort": "low", "summary": "auto"},
            "metadata": {"k": "v"},
            "store": True,
            "max_output_tokens": 99,
        },
        BUDGET_MODEL,
    ).echo
    assert echo["instructions"] == "Brief." and echo["tools"] == [WEATHER]
    assert echo["tool_choice"] == "required" and echo["parallel_tool_calls"] is False
    assert echo["reasoning"] == {"effort": "low", "summary": "auto"}
    assert echo["metadata"] == {"k": "v"} and echo["max_output_tokens"] == 99
    assert echo["store"] is False  # nothing is stored, whatever was asked


def test_a_message_becomes_a_response_with_one_item_per_block() -> None:
    response = to_response(
        MESSAGE,
        resp_id=RESP,
        created_at=1_700_000_000,
        model="claude-sonnet-4-6",
        echo=ECHO,
        namespaced={"agents__spawn": ("agents", "spawn")},
    )
    assert response == {
        "id": RESP,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "model": "claude-sonnet-4-6",
        "output": [
            {
                "id": "rs_0123abcd_0",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Two cities."}],
                "encrypted_content": SEALED,
            },
            {
                "id": "rs_0123abcd_1",
                "type": "reasoning",
                "summary": [],
                "encrypted_content": seal_thinking(REDACTED),
            },
            {
                "id": "msg_0123abcd_2",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}
                ],
            },
            {
                "id": "fc_toolu_01",
                "type": "function_call",
                "status": "completed",
                "call_id": "toolu_01",
                "name": "weather",
                "arguments": '{"city":"Zürich"}',
            },
            {
                "id": "fc_toolu_02",
                "type": "function_call",
                "status": "completed",
                "call_id": "toolu_02",
                "name": "spawn",
                "namespace": "agents",
                "arguments": "{}",
            },
        ],
        **ECHO,
        "usage": {
            "input_tokens": 115,
            "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 145,
        },
    }
    Response.model_validate(response)  # the SDK's own model, strictly


@pytest.mark.parametrize(
    ("stop_reason", "status", "reason"),
    [
        ("end_turn", "completed", None),
        ("pause_turn", "completed", None),
        ("max_tokens", "incomplete", "max_output_tokens"),
        ("model_context_window_exceeded", "incomplete", "max_output_tokens"),
        ("refusal", "incomplete", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, status: str, reason: str | None) -> None:
    response = to_response(
        {**MESSAGE, "stop_reason": stop_reason}, resp_id=RESP, created_at=0, model="m", echo={}
    )
    assert response["status"] == status
    assert response["incomplete_details"] == (None if reason is None else {"reason": reason})


def test_reasoning_tokens_when_the_upstream_reports_them() -> None:
    usage = responses_usage(
        {"input_tokens": 1, "output_tokens": 9, "output_tokens_details": {"thinking_tokens": 7}}
    )
    assert usage["output_tokens_details"] == {"reasoning_tokens": 7}


STREAM: list[ev.Event] = [
    ev.message_start(),
    ev.ping(),
    *ev.thinking_block(0, "EqQBCkYIBhgC/sig+==", "Two ", "cities."),
    ev.block_start(1, REDACTED),
    ev.block_stop(1),
    *ev.text_block(2, "Check", "ing."),
    *ev.tool_block(3, "toolu_01", "weather", '{"city": ', '"Zürich"}'),
    *ev.tool_block(4, "toolu_02", "agents__spawn"),
    ev.message_delta("tool_use", {"output_tokens": 30}),
    ev.message_stop(),
]


def stream_events(stream: list[ev.Event]) -> list[dict[str, Any]]:
    translator = ResponseEvents(
        RESP,
        created_at=1_700_000_000,
        model="claude-sonnet-4-6",
        echo=ECHO,
        namespaced={"agents__spawn": ("agents", "spawn")},
    )
    out: list[dict[str, Any]] = []
    for name, data in stream:
        out.extend(translator.feed(name, data))
    return out


def test_the_stream_event_sequence() -> None:
    events = stream_events(STREAM)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    brief = [(e["type"], e.get("output_index"), e.get("delta")) for e in events]
    assert brief == [
        ("response.created", None, None),
        ("response.in_progress", None, None),
        ("response.output_item.added", 0, None),
        ("response.reasoning_summary_part.added", 0, None),
        ("response.reasoning_summary_text.delta", 0, "Two "),
        ("response.reasoning_summary_text.delta", 0, "cities."),
        ("response.reasoning_summary_text.done", 0, None),
        ("response.reasoning_summary_part.done", 0, None),
        ("response.output_item.done", 0, None),
        ("response.output_item.added", 1, None),
        ("response.output_item.done", 1, None),
        ("response.output_item.added", 2, None),
        ("response.content_part.added", 2, None),
        ("response.output_text.delta", 2, "Check"),
        ("response.output_text.delta", 2, "ing."),
        ("response.output_text.done", 2, None),
        ("response.content_part.done", 2, None),
        ("response.output_item.done", 2, None),
        ("response.output_item.added", 3, None),
        ("response.function_call_arguments.delta", 3, '{"city": '),
        ("response.function_call_arguments.delta", 3, '"Zürich"}'),
        ("response.function_call_arguments.done", 3, None),
        ("response.output_item.done", 3, None),
        ("response.output_item.added", 4, None),
        ("response.function_call_arguments.delta", 4, "{}"),
        ("response.function_call_arguments.done", 4, None),
        ("response.output_item.done", 4, None),
        ("response.completed", None, None),
    ]
    created = events[0]["response"]
    assert (
        created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    )
    assert events[8]["item"]["encrypted_content"] == SEALED  # the signature arrived by delta
    assert events[25] == {
        "type": "response.function_call_arguments.done",
        "sequence_number": 25,
        "output_index": 4,
        "item_id": "fc_toolu_02",
        "name": "spawn",
        "arguments": "{}",
    }
    final = events[-1]["response"]
    assert final["usage"]["output_tokens"] == 30 and final["usage"]["input_tokens"] == 25


def test_the_sdk_accumulates_the_stream_into_the_json_answer() -> None:
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for raw in stream_events(STREAM):
        state.handle_event(adapter.validate_python(orjson.loads(orjson.dumps(raw))))
    final = state._completed_response
    assert final is not None
    whole = to_response(
        {**MESSAGE, "content": [b for b in MESSAGE["content"] if b["type"] != "server_tool_use"]},
        resp_id=RESP,
        created_at=1_700_000_000,
        model="claude-sonnet-4-6",
        echo=ECHO,
        namespaced={"agents__spawn": ("agents", "spawn")},
    )
    streamed = [
        item.model_dump(exclude_none=True, exclude={"parsed_arguments"}) for item in final.output
    ]
    expected = [
        Response.model_validate(whole).output[i].model_dump(exclude_none=True) for i in range(5)
    ]
    # The streamed arguments keep the upstream's spacing; the rest is the same.
    expected[3]["arguments"] = '{"city": "Zürich"}'
    assert streamed == expected
    assert final.output_text == "Checking."


def test_an_upstream_error_event_fails_the_response() -> None:
    events = stream_events(
        [
            ev.message_start(),
            *ev.text_block(0, "Hi"),
            (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ),
            ev.message_stop(),
        ]
    )
    last = events[-1]
    assert last["type"] == "response.failed"
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"] == {
        "code": "server_error",
        "message": "Overloaded",
        "type": "overloaded_error",
    }
    assert [i["type"] for i in last["response"]["output"]] == ["message"]
    assert "response.completed" not in [e["type"] for e in events]


def test_a_stream_cut_short_fails_with_the_contracts_code() -> None:
    translator = ResponseEvents(RESP, created_at=0, model="m", echo={})
    events = translator.failure("Your balance is spent.", "insufficient_balance")
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert events[-1]["response"]["error"]["code"] == "insufficient_balance"
    assert translator.failure("again", "api_error") == []
