"""Shared constants of the translation tests: model traits and a one-message conversation."""

from __future__ import annotations

from typing import Any

from aiapi_edge.openai import ModelTraits

# A model with budget thinking (no adaptive, no effort) that takes sampling parameters.
BUDGET_MODEL = ModelTraits(
    supports_adaptive_thinking=False,
    supports_effort=False,
    rejects_sampling_params=False,
    default_max_tokens=4096,
)
# A model with adaptive thinking and effort that refuses sampling parameters.
ADAPTIVE_MODEL = ModelTraits(
    supports_adaptive_thinking=True,
    supports_effort=True,
    rejects_sampling_params=True,
    default_max_tokens=8192,
)

HELLO: list[dict[str, Any]] = [{"role": "user", "content": "Hello"}]
HELLO_ANTHROPIC: list[dict[str, Any]] = [
    {"role": "user", "content": [{"type": "text", "text": "Hello"}]}
]


def function_calls(message: Any) -> list[tuple[str, str, str]]:
    """``(id, name, arguments)`` of each tool call of an SDK message; all must be function calls."""
    calls: list[tuple[str, str, str]] = []
    for call in message.tool_calls or []:
        assert call.type == "function"
        calls.append((call.id, call.function.name, call.function.arguments))
    return calls
