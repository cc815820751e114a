"""Golden tests of the stream translation: the exact chunk list for each kind of Anthropic stream."""

from __future__ import annotations

from typing import Any

import pytest
from aiapi_edge.openai import ChunkTranslator

from . import events as ev

CREATED = 1_700_000_000
MODEL = "gpt-4o"  # the name the client asked for, echoed back


def run(
    stream: list[ev.Event], *, include_usage: bool = False
) -> tuple[list[dict[str, Any]], ChunkTranslator]:
    translator = ChunkTranslator(created=CREATED, request_model=MODEL, include_usage=include_usage)
    chunks: list[dict[str, Any]] = []
    for name, data in stream:
        chunks.extend(translator.feed(name, data))
    chunks.extend(translator.finish())
    return chunks, translator


def chunk(
    delta: dict[str, Any],
    finish: str | None = None,
    *,
    usage: bool = False,
    chunk_id: str = "chatcmpl-01ABC",
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        result["usage"] = None
    return result


END = {"output_tokens": 15}


def test_text_stream() -> None:
    chunks, _ = run(
        [
            ev.message_start(),
            ev.ping(),
            *ev.text_block(0, "Hel", "lo", ""),
            ev.message_delta("end_turn", END),
            ev.message_stop(),
        ]
    )
    assert chunks == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
    ]


def test_tool_calls_are_indexed_by_ordinal_with_id_and_name_only_first() -> None:
    chunks, _ = run(
        [
            ev.message_start(),
            *ev.text_block(0, "Let me check."),
            *ev.tool_block(1, "toolu_A", "weather", "", '{"city"', ': "Paris"}'),
            *ev.tool_block(2, "toolu_B", "weather", '{"city": "Rome"}'),
            *ev.tool_block(3, "toolu_C", "now"),
            ev.message_delta("tool_use", END),
            ev.message_stop(),
        ]
    )
    assert chunks == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me check."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_A",
                        "type": "function",
                        "function": {"name": "weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "toolu_B",
                        "type": "function",
                        "function": {"name": "weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Rome"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 2,
                        "id": "toolu_C",
                        "type": "function",
                        "function": {"name": "now", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 2, "function": {"arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ]


def test_thinking_stream_with_signature_and_redacted_block() -> None:
    chunks, _ = run(
        [
            ev.message_start(),
            *ev.thinking_block(0, "sig==", "Hmm, ", "ok."),
            ev.block_start(1, {"type": "redacted_thinking", "data": "REDACTED"}),
            ev.block_stop(1),
            *ev.text_block(2, "Done"),
            ev.message_delta("end_turn", END),
            ev.message_stop(),
        ]
    )
    assert chunks == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Hmm, "}),
        chunk({"reasoning_content": "ok."}),
        chunk(
            {
                "thinking_blocks": [
                    {"index": 0, "type": "thinking", "thinking": "Hmm, ok.", "signature": "sig=="}
                ]
            }
        ),
        chunk({"thinking_blocks": [{"index": 1, "type": "redacted_thinking", "data": "REDACTED"}]}),
        chunk({"content": "Done"}),
        chunk({}, "stop"),
    ]


def test_include_usage_adds_null_usage_and_one_final_usage_chunk() -> None:
    start_usage = {
        "input_tokens": 7,
        "output_tokens": 1,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200,
        "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 0},
    }
    chunks, translator = run(
        [
            ev.message_start(usage=start_usage),
            *ev.text_block(0, "Hi"),
            ev.message_delta(
                "max_tokens",
                {"output_tokens": 40, "output_tokens_details": {"thinking_tokens": 0}},
            ),
            ev.message_stop(),
        ],
        include_usage=True,
    )
    assert chunks == [
        chunk({"role": "assistant", "content": ""}, usage=True),
        chunk({"content": "Hi"}, usage=True),
        chunk({}, "length", usage=True),
        {
            "id": "chatcmpl-01ABC",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": None,
            "choices": [],
            "usage": {
                "prompt_tokens": 1207,
                "completion_tokens": 40,
                "total_tokens": 1247,
                "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
    ]
    assert translator.usage == {
        **start_usage,
        "output_tokens": 40,
        "output_tokens_details": {"thinking_tokens": 0},
    }
    assert translator.stop_reason == "max_tokens"
    assert translator.done


def test_refusal_maps_to_content_filter() -> None:
    chunks, _ = run([ev.message_start(), ev.message_delta("refusal", END), ev.message_stop()])
    assert chunks[-1] == chunk({}, "content_filter")


def test_upstream_error_event_becomes_an_openai_error_and_ends_the_stream() -> None:
    translator = ChunkTranslator(created=CREATED, request_model=MODEL, include_usage=True)
    start, text, _stop = ev.text_block(0, "par")
    out = [translator.feed(*ev.message_start()), translator.feed(*start), translator.feed(*text)]
    error = translator.feed(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert out == [
        [chunk({"role": "assistant", "content": ""}, usage=True)],
        [],
        [chunk({"content": "par"}, usage=True)],
    ]
    assert error == [
        {
            "error": {
                "message": "Overloaded",
                "type": "overloaded_error",
                "param": None,
                "code": "overloaded",
            }
        }
    ]
    assert translator.feed(*ev.message_stop()) == []
    assert translator.finish() == []


def test_gateway_error_chunk_ends_the_stream() -> None:
    translator = ChunkTranslator(created=CREATED, request_model=MODEL)
    translator.feed(*ev.message_start())
    assert translator.error_chunk("Upstream connection lost", "api_error") == {
        "error": {
            "message": "Upstream connection lost",
            "type": "api_error",
            "param": None,
            "code": None,
        }
    }
    assert translator.finish() == []


def test_finish_closes_a_stream_that_ended_without_message_stop() -> None:
    translator = ChunkTranslator(
        created=CREATED, request_model=MODEL, completion_id="chatcmpl-fixed"
    )
    assert translator.feed(*ev.text_delta(0, "orphan")) == []  # no block was started
    assert translator.finish() == [chunk({"role": "assistant"}, "stop", chunk_id="chatcmpl-fixed")]
    assert translator.finish() == []


def test_events_named_only_in_their_data_are_understood() -> None:
    translator = ChunkTranslator(created=CREATED, request_model=MODEL)
    _name, data = ev.message_start()
    assert translator.feed("", data) == [chunk({"role": "assistant", "content": ""})]


def test_tool_use_start_with_a_full_input_and_no_deltas() -> None:
    chunks, _ = run(
        [
            ev.message_start(),
            ev.block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}),
            ev.block_stop(0),
            ev.message_delta("tool_use", END),
            ev.message_stop(),
        ]
    )
    assert chunks[1:] == [
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}),
        chunk({}, "tool_calls"),
    ]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}},
        {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
    ],
)
def test_server_tool_blocks_are_skipped(block: dict[str, Any]) -> None:
    chunks, _ = run(
        [
            ev.message_start(),
            ev.block_start(0, block),
            ev.json_delta(0, '{"query": "x"}'),
            ev.block_stop(0),
            ev.message_delta("end_turn", END),
            ev.message_stop(),
        ]
    )
    assert chunks == [chunk({"role": "assistant", "content": ""}), chunk({}, "stop")]
