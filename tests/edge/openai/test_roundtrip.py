"""Multi-turn thinking with tools through the OpenAI surface.

An Anthropic answer with thinking and a tool call goes out as an OpenAI message; the client sends
that message back with the tool's result; the next Anthropic request must carry the very same
thinking block (signature intact) before the tool_use, and then the tool_result.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiapi_edge.openai import ChunkTranslator, to_anthropic, to_openai_completion
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from . import events as ev
from .support import BUDGET_MODEL

SIGNATURE = "EuYBCkQYAiJAk3+/Zz9x0l1Zq5w==\nwith/odd+bytes="
THINKING = "I should look up the weather — in °C.\n"
TOOL_INPUT = {"city": "Paris", "days": [1, 2], "note": "naïve"}

ANTHROPIC_ANSWER: dict[str, Any] = {
    "id": "msg_01RT",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [
        {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "RDT=="},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_RT", "name": "weather", "input": TOOL_INPUT},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 100, "output_tokens": 50},
}

EXPECTED_ASSISTANT_TURN = {
    "role": "assistant",
    "content": [
        {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "RDT=="},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_RT", "name": "weather", "input": TOOL_INPUT},
    ],
}


def next_request(assistant_message: dict[str, Any]) -> dict[str, Any]:
    body = {
        "model": "claude-sonnet-4-6",
        "reasoning_effort": "medium",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            assistant_message,
            {"role": "tool", "tool_call_id": "toolu_RT", "content": "18C, sunny"},
        ],
    }
    # Over the wire, as a client would send it.
    return to_anthropic(orjson.loads(orjson.dumps(body)), BUDGET_MODEL).anthropic_body


def assert_next_request(anthropic_body: dict[str, Any]) -> None:
    assert anthropic_body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        EXPECTED_ASSISTANT_TURN,
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_RT", "content": "18C, sunny"}
            ],
        },
    ]
    assert anthropic_body["thinking"] == {"type": "enabled", "budget_tokens": 8192}


def test_non_stream_round_trip_keeps_the_signed_thinking_block() -> None:
    completion = to_openai_completion(
        ANTHROPIC_ANSWER, created=1, request_model="claude-sonnet-4-6"
    )
    # The client keeps the message as the SDK parsed it and appends it to its history.
    message = ChatCompletion.model_validate(completion).choices[0].message
    assert_next_request(next_request(message.model_dump(exclude_none=True)))


def test_stream_round_trip_keeps_the_signed_thinking_block() -> None:
    stream: list[ev.Event] = [
        ev.message_start("msg_01RT"),
        *ev.thinking_block(0, SIGNATURE, THINKING[:10], THINKING[10:]),
        ev.block_start(1, {"type": "redacted_thinking", "data": "RDT=="}),
        ev.block_stop(1),
        *ev.text_block(2, "Let me check."),
        *ev.tool_block(
            3, "toolu_RT", "weather", '{"city": "Paris", ', '"days": [1, 2], "note": "naïve"}'
        ),
        ev.message_delta("tool_use", {"output_tokens": 50}),
        ev.message_stop(),
    ]
    translator = ChunkTranslator(created=1, request_model="claude-sonnet-4-6")
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for name, data in stream:
        for chunk in translator.feed(name, data):
            state.handle_chunk(
                ChatCompletionChunk.model_validate(orjson.loads(orjson.dumps(chunk)))
            )
    message = state.get_final_completion().choices[0].message
    sent_back = message.model_dump(exclude_none=True, exclude={"parsed"})
    for call in sent_back["tool_calls"]:
        call["function"].pop("parsed_arguments", None)
    assert_next_request(next_request(sent_back))
