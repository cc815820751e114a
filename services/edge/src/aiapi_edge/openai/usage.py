"""Token usage: Anthropic's meters to OpenAI's, in exactly one place.

Anthropic's ``input_tokens`` excludes the prompt tokens read from or written to the prompt cache;
OpenAI's ``prompt_tokens`` includes them (``prompt_tokens_details.cached_tokens`` is a part of it,
not an addition). Every translated usage goes through :func:`openai_usage` so the sum is made once.
Thinking tokens are output tokens on both sides, so ``reasoning_tokens`` is a part of
``completion_tokens``; it is reported only when the upstream (or the caller) knows it, never
estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def cache_write_tokens(usage: Mapping[str, Any]) -> int:
    """Prompt-cache write tokens: the total, or the sum of the per-TTL breakdown if only it is given."""
    total = usage.get("cache_creation_input_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    breakdown = usage.get("cache_creation")
    if isinstance(breakdown, Mapping):
        return _count(breakdown.get("ephemeral_5m_input_tokens")) + _count(
            breakdown.get("ephemeral_1h_input_tokens")
        )
    return 0


def upstream_thinking_tokens(usage: Mapping[str, Any]) -> int | None:
    """``output_tokens_details.thinking_tokens`` when the upstream reports it."""
    details = usage.get("output_tokens_details")
    if isinstance(details, Mapping):
        value = details.get("thinking_tokens")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def openai_usage(usage: Mapping[str, Any], thinking_tokens: int | None = None) -> dict[str, Any]:
    """The OpenAI ``usage`` object for an Anthropic ``usage`` object.

    ``thinking_tokens`` overrides what the upstream reported in ``output_tokens_details``; when
    neither is known, ``completion_tokens_details`` is left out rather than guessed.
    """
    cache_read = _count(usage.get("cache_read_input_tokens"))
    cache_write = cache_write_tokens(usage)
    prompt = _count(usage.get("input_tokens")) + cache_read + cache_write
    completion = _count(usage.get("output_tokens"))
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
    }
    reasoning = thinking_tokens if thinking_tokens is not None else upstream_thinking_tokens(usage)
    if reasoning is not None:
        result["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return result


def merge_usage(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Fold a later usage report into an earlier one: later values replace, never add.

    ``message_delta`` carries cumulative counts; a field it leaves out (or sends as null) keeps
    the value ``message_start`` gave.
    """
    merged = dict(current)
    for key, value in update.items():
        if value is not None:
            merged[key] = value
    return merged
