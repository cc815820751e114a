"""Request validation: the shape rules of the real API that a gateway test can trip.

Each failure raises an `ApiError` 400 `invalid_request_error` with a message in the real API's
`field.path: reason` style. Pure, no I/O.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from aiapi_simulator.errors import invalid_request
from aiapi_simulator.thinking import sign_thinking

MIN_THINKING_BUDGET = 1024
# The beta under which `messages` may hold `role: "system"` turns (system text given mid-way
# through a conversation; Claude Code sends them when it can).
SYSTEM_MESSAGES_BETA = "per-turn-control-2026-07-01"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_messages(
    body: Any, *, needs_max_tokens: bool, betas: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Check a `/v1/messages` (or `count_tokens`) body, sent with ``betas``, as a dict."""
    if not isinstance(body, dict):
        raise invalid_request("body: Input should be a valid dictionary")
    model = body.get("model")
    if model is None:
        raise invalid_request("model: Field required")
    if not isinstance(model, str) or not model:
        raise invalid_request("model: Input should be a valid string")
    _check_messages(body.get("messages"), SYSTEM_MESSAGES_BETA in betas)
    max_tokens = body.get("max_tokens")
    if needs_max_tokens:
        if max_tokens is None:
            raise invalid_request("max_tokens: Field required")
        if not _is_int(max_tokens):
            raise invalid_request("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise invalid_request("max_tokens: Input should be greater than or equal to 1")
    _check_system(body.get("system"))
    _check_tools(body.get("tools"))
    _check_stop_sequences(body.get("stop_sequences"))
    _check_thinking(body.get("thinking"), max_tokens if needs_max_tokens else None)
    return body


def _check_messages(messages: Any, system_turns: bool) -> None:
    if messages is None:
        raise invalid_request("messages: Field required")
    if not isinstance(messages, list):
        raise invalid_request("messages: Input should be a valid list")
    if not messages:
        raise invalid_request("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_request(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") == "system" and system_turns:
            _check_system_turn(message.get("content"), f"messages.{i}.content")
            continue
        if message.get("role") not in ("user", "assistant"):
            raise invalid_request(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if content is None:
            raise invalid_request(f"messages.{i}.content: Field required")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise invalid_request(f"messages.{i}.content: Input should be a valid list")
        for j, block in enumerate(content):
            _check_block(block, f"messages.{i}.content.{j}", message["role"])


def _check_system_turn(content: Any, where: str) -> None:
    """A system turn holds text only: a string or a list of text blocks."""
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise invalid_request(f"{where}: Input should be a valid string or list of text blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid_request(f"{where}.{j}: Input should be a text block")
        if not isinstance(block.get("text"), str):
            raise invalid_request(f"{where}.{j}.text: Field required")


def _check_block(block: Any, where: str, role: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid_request(f"{where}: Input should be a valid content block")
    kind = block["type"]
    if kind == "text" and not isinstance(block.get("text"), str):
        raise invalid_request(f"{where}.text: Field required")
    if kind == "thinking":
        if role != "assistant":
            raise invalid_request(f"{where}: thinking blocks are only allowed in assistant turns")
        thinking, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thinking, str) or not isinstance(signature, str):
            raise invalid_request(f"{where}: Invalid `signature` in `thinking` block")
        if sign_thinking(thinking) != signature:
            raise invalid_request(f"{where}: Invalid `signature` in `thinking` block")
    if kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        raise invalid_request(f"{where}.data: Field required")
    if kind == "tool_use" and not isinstance(block.get("name"), str):
        raise invalid_request(f"{where}.name: Field required")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid_request("system: Input should be a valid string or list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid_request(f"system.{i}: Input should be a text block")
        if not isinstance(block.get("text"), str):
            raise invalid_request(f"system.{i}.text: Field required")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_request("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise invalid_request(f"tools.{i}.name: Field required")


def _check_stop_sequences(stop_sequences: Any) -> None:
    if stop_sequences is None:
        return
    if not isinstance(stop_sequences, list) or not all(
        isinstance(s, str) and s for s in stop_sequences
    ):
        raise invalid_request("stop_sequences: Input should be a list of non-empty strings")


def _check_thinking(thinking: Any, max_tokens: int | None) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict):
        raise invalid_request("thinking: Input should be a valid dictionary")
    kind = thinking.get("type")
    if kind in ("disabled", "adaptive"):
        return
    if kind != "enabled":
        raise invalid_request("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
    budget = thinking.get("budget_tokens")
    if not _is_int(budget):
        raise invalid_request("thinking.enabled.budget_tokens: Field required")
    if budget < MIN_THINKING_BUDGET:
        raise invalid_request(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if max_tokens is not None and budget >= max_tokens:
        raise invalid_request("`max_tokens` must be greater than `thinking.budget_tokens`")
