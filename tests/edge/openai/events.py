"""Builders of Anthropic SSE events (name, data) for the stream tests, in the upstream's wire shape."""

from __future__ import annotations

from typing import Any

Event = tuple[str, dict[str, Any]]


def message_start(message_id: str = "msg_01ABC", usage: dict[str, Any] | None = None) -> Event:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage
                or {
                    "input_tokens": 25,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 0,
                    "cache_creation_input_tokens": 0,
                },
            },
        },
    )


def block_start(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def delta(index: int, payload: dict[str, Any]) -> Event:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": payload},
    )


def text_delta(index: int, text: str) -> Event:
    return delta(index, {"type": "text_delta", "text": text})


def json_delta(index: int, partial: str) -> Event:
    return delta(index, {"type": "input_json_delta", "partial_json": partial})


def thinking_delta(index: int, thinking: str) -> Event:
    return delta(index, {"type": "thinking_delta", "thinking": thinking})


def signature_delta(index: int, signature: str) -> Event:
    return delta(index, {"type": "signature_delta", "signature": signature})


def block_stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str, usage: dict[str, Any]) -> Event:
    return (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        },
    )


def message_stop() -> Event:
    return ("message_stop", {"type": "message_stop"})


def ping() -> Event:
    return ("ping", {"type": "ping"})


def text_block(index: int, *pieces: str) -> list[Event]:
    return [
        block_start(index, {"type": "text", "text": ""}),
        *(text_delta(index, p) for p in pieces),
        block_stop(index),
    ]


def tool_block(index: int, tool_id: str, name: str, *pieces: str) -> list[Event]:
    return [
        block_start(index, {"type": "tool_use", "id": tool_id, "name": name, "input": {}}),
        *(json_delta(index, p) for p in pieces),
        block_stop(index),
    ]


def thinking_block(index: int, signature: str, *pieces: str) -> list[Event]:
    return [
        block_start(index, {"type": "thinking", "thinking": "", "signature": ""}),
        *(thinking_delta(index, p) for p in pieces),
        signature_delta(index, signature),
        block_stop(index),
    ]
