"""Anthropic Messages response → OpenAI ``chat.completion``.

- ``text`` blocks, joined, → ``message.content``; ``null`` when the answer is only tool calls.
- ``tool_use`` blocks → ``message.tool_calls`` (``arguments`` is the input as compact JSON); for a
  request with legacy ``functions``, the first one → ``message.function_call`` (``name``,
  ``arguments``) and ``finish_reason: "function_call"`` instead.
- ``thinking`` blocks, joined, → ``message.reasoning_content``; every ``thinking`` and
  ``redacted_thinking`` block, signature and data unchanged, → ``message.thinking_blocks``, which a
  client sends back on its next request to keep multi-turn thinking with tools working.
- ``stop_reason`` → ``finish_reason`` per :data:`FINISH_REASONS` (unknown or missing → ``stop``).
- ``usage`` → :func:`.usage.openai_usage`.
- ``id`` is ``chatcmpl-`` + the Anthropic message id without its ``msg_`` prefix; ``model`` is the
  model the client asked for; ``system_fingerprint`` is ``null``.

Server-tool blocks (``server_tool_use``, ``web_search_tool_result``...) have no Chat Completions
form and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from .usage import openai_usage

JSON = dict[str, Any]

FINISH_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: object) -> str:
    """The OpenAI ``finish_reason`` for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def legacy_finish_reason(finish: str) -> str:
    """A legacy ``functions`` request's answer ends with ``function_call``, not ``tool_calls``."""
    return "function_call" if finish == "tool_calls" else finish


def completion_id(message_id: object) -> str:
    """``chatcmpl-<id>`` for an Anthropic message id ``msg_<id>``."""
    text = message_id if isinstance(message_id, str) and message_id else "unknown"
    return "chatcmpl-" + text.removeprefix("msg_")


def compact_json(value: object) -> str:
    """Tool input as OpenAI ``arguments``: compact JSON, non-ASCII kept as is."""
    return orjson.dumps(value).decode()


def thinking_block(block: Mapping[str, Any]) -> JSON | None:
    """A ``thinking_blocks`` entry for an Anthropic thinking or redacted-thinking block."""
    kind = block.get("type")
    if kind == "thinking":
        return {
            "type": "thinking",
            "thinking": block.get("thinking", ""),
            "signature": block.get("signature", ""),
        }
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data", "")}
    return None


def to_openai_completion(
    message: Mapping[str, Any],
    *,
    created: int,
    request_model: str,
    thinking_tokens: int | None = None,
    legacy_functions: bool = False,
) -> JSON:
    """Translate a non-stream Anthropic message into a ``chat.completion`` object.

    ``thinking_tokens`` overrides the count the upstream reported, if the caller knows better;
    ``legacy_functions`` (the request used ``functions``) answers with ``function_call``.
    """
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[JSON] = []
    tool_calls: list[JSON] = []
    content = message.get("content")
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": compact_json(block.get("input", {})),
                    },
                }
            )
        else:
            entry = thinking_block(block)
            if entry is not None:
                thinking_blocks.append(entry)
                if entry["type"] == "thinking":
                    reasoning.append(entry["thinking"])

    text: str | None = "".join(texts)
    if not texts and tool_calls:
        text = None
    out_message: JSON = {"role": "assistant", "content": text, "refusal": None}
    finish = finish_reason(message.get("stop_reason"))
    if tool_calls and legacy_functions:
        out_message["function_call"] = tool_calls[0]["function"]
        finish = legacy_finish_reason(finish)
    elif tool_calls:
        out_message["tool_calls"] = tool_calls
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        out_message["thinking_blocks"] = thinking_blocks
    usage = message.get("usage")
    return {
        "id": completion_id(message.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": request_model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": openai_usage(usage if isinstance(usage, Mapping) else {}, thinking_tokens),
    }
