"""The simulator's tokenizer: a documented rule simple enough for tests to predict by hand.

A token is at most four characters (Unicode code points). Output text is cut into pieces of four
characters, one piece per token and per streamed delta. Input is counted per *segment* (each tool
definition, each system block, each message content block), so that the tokens of a prefix are
the sum of its segments:

- a text segment (a string `system`, a string message `content`, a `text` block) counts
  `ceil(len(text) / 4)`;
- any other segment counts `ceil(len(json) / 4)` where `json` is the block (or tool definition)
  without its `cache_control` key, serialised compactly with sorted keys (`orjson`,
  `OPT_SORT_KEYS`, non-ASCII kept as is).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

CHARS_PER_TOKEN = 4


def count_text(text: str) -> int:
    """Tokens of a piece of text: one per started group of four characters."""
    return -(-len(text) // CHARS_PER_TOKEN)


def split_tokens(text: str) -> list[str]:
    """Cut text into its tokens (pieces of four characters, the last one possibly shorter)."""
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def canonical_json(value: Any) -> bytes:
    """The compact, key-sorted serialisation every count and hash in the simulator uses."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def count_json(value: Any) -> int:
    """Tokens of a non-text segment: its canonical JSON counted as text."""
    return count_text(canonical_json(value).decode())


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A `cache_control` marker: the prompt prefix ending at the segment that carries it."""

    prefix_tokens: int
    ttl: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class PromptTokens:
    """The input tokens of a request and its cache breakpoints, in prompt order."""

    total: int
    breakpoints: tuple[Breakpoint, ...]


def _without_cache_control(block: dict[str, Any]) -> dict[str, Any]:
    if "cache_control" not in block:
        return block
    return {k: v for k, v in block.items() if k != "cache_control"}


def _segments(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield `(section, segment)` in cache order: tools, then system, then messages."""
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            yield "tool", tool
    system = body.get("system")
    if isinstance(system, str):
        if system:
            yield "system", system
    elif isinstance(system, list):
        for block in system:
            yield "system", block
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            role = str(message.get("role"))
            content = message.get("content")
            if isinstance(content, str):
                yield role, content
            elif isinstance(content, list):
                for block in content:
                    yield role, block


def _segment_tokens(segment: Any) -> int:
    if isinstance(segment, str):
        return count_text(segment)
    if isinstance(segment, dict):
        if segment.get("type") == "text" and isinstance(segment.get("text"), str):
            return count_text(segment["text"])
        return count_json(_without_cache_control(segment))
    return count_json(segment)


def _cache_ttl(segment: Any) -> str | None:
    if not isinstance(segment, dict):
        return None
    control = segment.get("cache_control")
    if not isinstance(control, dict):
        return None
    ttl = control.get("ttl")
    return "1h" if ttl == "1h" else "5m"


def count_prompt(body: dict[str, Any]) -> PromptTokens:
    """Count the input tokens of a `/v1/messages` body and locate its cache breakpoints.

    A breakpoint's digest covers the model and every segment up to and including the marked one,
    so two requests share a cache entry exactly when they share that prefix.
    """
    segments = list(_segments(body))
    total = 0
    marks: list[tuple[int, int, str]] = []
    for position, (_section, segment) in enumerate(segments):
        total += _segment_tokens(segment)
        ttl = _cache_ttl(segment)
        if ttl is not None:
            marks.append((position, total, ttl))
    if not marks:
        return PromptTokens(total, ())
    hasher = hashlib.sha256(canonical_json(body.get("model")))
    breakpoints: list[Breakpoint] = []
    next_mark = 0
    for position, (section, segment) in enumerate(segments):
        piece = _without_cache_control(segment) if isinstance(segment, dict) else segment
        hasher.update(canonical_json([section, piece]))
        if marks[next_mark][0] == position:
            _, prefix_tokens, ttl = marks[next_mark]
            breakpoints.append(Breakpoint(prefix_tokens, ttl, hasher.digest()))
            next_mark += 1
            if next_mark == len(marks):
                break
    return PromptTokens(total, tuple(breakpoints))
