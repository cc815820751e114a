"""Rendering a `Reply` on the wire: the JSON message, or the SSE frames of the stream.

The stream carries exactly the content of the JSON message: every delta is one output token
(a piece of text, of thinking, or of a tool's input JSON), and a thinking block ends with one
`signature_delta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from aiapi_simulator.responder import Reply, TextOut, ThinkingOut, ToolUseOut, Usage
from aiapi_simulator.tokens import split_tokens

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
OVERLOADED = (
    b"event: error\n"
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)


def frame(event: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: `event: X\\ndata: {json}\\n\\n`."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_TOOL_COUNTS = ("web_search_requests", "web_fetch_requests")


def reported_json(usage: Usage, *, final: bool = True) -> dict[str, Any]:
    """What a ``[[usage: ...]]`` directive asked to report beyond tokens, as the API shapes it;
    a stream's ``message_start`` (not ``final``) has used no server tool yet."""
    reported = dict(usage.reported)
    shaped: dict[str, Any] = {k: v for k, v in reported.items() if k not in _TOOL_COUNTS}
    if any(k in reported for k in _TOOL_COUNTS):
        shaped["server_tool_use"] = {k: reported.get(k, 0) if final else 0 for k in _TOOL_COUNTS}
    return shaped


def usage_json(usage: Usage, output_tokens: int, *, final: bool = True) -> dict[str, Any]:
    cache = usage.cache
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": cache.creation,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.creation_5m,
            "ephemeral_1h_input_tokens": cache.creation_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    } | reported_json(usage, final=final)


def _block_json(block: ThinkingOut | TextOut | ToolUseOut) -> dict[str, Any]:
    if isinstance(block, TextOut):
        return {"type": "text", "text": block.text}
    if isinstance(block, ThinkingOut):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    kind = "server_tool_use" if block.server else "tool_use"
    return {"type": kind, "id": block.id, "name": block.name, "input": block.input}


def _message(reply: Reply, content: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The message object; `content=None` gives the `message_start` form (empty, no stop)."""
    final = content is not None
    return {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content if final else [],
        "stop_reason": reply.stop_reason if final else None,
        "stop_sequence": reply.stop_sequence if final else None,
        "usage": usage_json(
            reply.usage,
            reply.usage.output_tokens if final else min(1, reply.usage.output_tokens),
            final=final,
        ),
    }


def message_json(reply: Reply) -> bytes:
    """The non-streaming response body."""
    content = [_block_json(block) for block in reply.blocks]
    return orjson.dumps(_message(reply, content))


@dataclass(frozen=True, slots=True)
class StreamScript:
    """The frames of a stream in order; `deltas[i]` is true when `frames[i]` is a token delta."""

    frames: list[bytes]
    deltas: list[bool]


def _start_json(block: ThinkingOut | TextOut | ToolUseOut) -> dict[str, Any]:
    if isinstance(block, TextOut):
        return {"type": "text", "text": ""}
    if isinstance(block, ThinkingOut):
        return {"type": "thinking", "thinking": "", "signature": ""}
    kind = "server_tool_use" if block.server else "tool_use"
    return {"type": kind, "id": block.id, "name": block.name, "input": {}}


_DELTA_KEYS = {
    TextOut: (b"text_delta", b"text"),
    ThinkingOut: (b"thinking_delta", b"thinking"),
    ToolUseOut: (b"input_json_delta", b"partial_json"),
}


def _delta_frames(
    index: int, block: ThinkingOut | TextOut | ToolUseOut, source: str
) -> list[bytes]:
    """One `content_block_delta` frame per token. The constant part of the frame is built once
    per block (byte-identical to `frame(...)` with orjson) because deltas dominate a stream."""
    kind, key = _DELTA_KEYS[type(block)]
    head = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        + str(index).encode()
        + b',"delta":{"type":"'
        + kind
        + b'","'
        + key
        + b'":'
    )
    return [head + orjson.dumps(piece) + b"}}\n\n" for piece in split_tokens(source)]


def stream_script(reply: Reply) -> StreamScript:
    """All frames of the stream: message_start, the blocks (with one ping after the first
    content_block_start), message_delta and message_stop."""
    frames: list[bytes] = []
    deltas: list[bool] = []

    def add(data: bytes, delta: bool = False) -> None:
        frames.append(data)
        deltas.append(delta)

    start = _message(reply, None)
    add(frame("message_start", {"type": "message_start", "message": start}))
    for index, block in enumerate(reply.blocks):
        add(
            frame(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": _start_json(block),
                },
            )
        )
        if index == 0:
            add(PING)
        if isinstance(block, TextOut):
            source = block.text
        elif isinstance(block, ThinkingOut):
            source = block.thinking
        else:
            source = block.input_json
        pieces = _delta_frames(index, block, source)
        frames.extend(pieces)
        deltas.extend([True] * len(pieces))
        if isinstance(block, ThinkingOut):
            signature = {"type": "signature_delta", "signature": block.signature}
            add(
                frame(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": signature},
                )
            )
        add(frame("content_block_stop", {"type": "content_block_stop", "index": index}))
    if not reply.blocks:
        add(PING)
    usage = reply.usage
    add(
        frame(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "cache_creation_input_tokens": usage.cache.creation,
                    "cache_read_input_tokens": usage.cache.read,
                    "output_tokens": usage.output_tokens,
                }
                | reported_json(usage),
            },
        )
    )
    add(MESSAGE_STOP)
    return StreamScript(frames, deltas)
