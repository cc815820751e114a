"""The reply a request gets: pure logic from a validated body to the message's content and usage.

Nothing here does I/O; `sse.py` renders a `Reply` as a JSON message or as SSE frames.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from itertools import cycle, islice
from typing import Any

import orjson

from aiapi_simulator.cache import CacheUsage
from aiapi_simulator.directives import Directives
from aiapi_simulator.examples import example_for
from aiapi_simulator.thinking import default_thinking, sign_thinking
from aiapi_simulator.tokens import CHARS_PER_TOKEN, canonical_json, count_text

ECHO_PREFIX = "Echo: "
ECHO_LIMIT = 200
FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit "


@dataclass(frozen=True, slots=True)
class ThinkingOut:
    thinking: str
    signature: str


@dataclass(frozen=True, slots=True)
class TextOut:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUseOut:
    id: str
    name: str
    input: Any
    input_json: str
    # A server tool the request declared (``web_search``, ``web_fetch``): a ``server_tool_use``
    # block, which the upstream runs itself (it neither stops the turn nor waits for the client).
    server: bool = False


# Server tool families and the usage count (``usage.server_tool_use``) each use adds to.
SERVER_TOOLS = {"web_search": "web_search_requests", "web_fetch": "web_fetch_requests"}


def _server_tool_names(body: dict[str, Any]) -> dict[str, str]:
    """The names of the server tools the request declares -> their usage count."""
    names: dict[str, str] = {}
    for tool in body.get("tools") or ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str):
            family = re.sub(r"_\d{8}$", "", kind)
            if family in SERVER_TOOLS:
                names[str(tool.get("name", family))] = SERVER_TOOLS[family]
    return names


Block = ThinkingOut | TextOut | ToolUseOut


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache: CacheUsage
    reported: tuple[tuple[str, int | str], ...] = ()  # beyond tokens, from [[usage: ...]]


@dataclass(slots=True)
class Reply:
    id: str
    model: str
    blocks: list[Block] = field(default_factory=list)
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=lambda: Usage(0, 0, CacheUsage()))


def _block_text(content: Any, kinds: tuple[str, ...]) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and "text" in kinds:
                texts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_result" and "tool_result" in kinds:
                texts.extend(_block_text(block.get("content"), ("text",)))
    return texts


def prompt_text(body: dict[str, Any]) -> str:
    """The text of the last user message: its string content or its text blocks joined by a
    newline; when it has no text block, the text inside its tool_result blocks."""
    for message in reversed(body["messages"]):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        texts = _block_text(content, ("text",))
        if not texts:
            texts = _block_text(content, ("tool_result",))
        return "\n".join(texts)
    return ""


def filler_text(tokens: int) -> str:
    """Exactly `tokens` output tokens of deterministic filler."""
    return "".join(islice(cycle(FILLER), tokens * CHARS_PER_TOKEN))


def _thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    tools = body.get("tools")
    if not isinstance(choice, dict) or not isinstance(tools, list) or not tools:
        return None
    if choice.get("type") == "any":
        first = tools[0]
        return first if isinstance(first, dict) else None
    if choice.get("type") == "tool":
        wanted = choice.get("name")
        return next((t for t in tools if isinstance(t, dict) and t.get("name") == wanted), None)
    return None


def _tool_id(body: dict[str, Any], index: int) -> str:
    digest = hashlib.sha256(canonical_json(body["messages"]) + index.to_bytes(4, "big"))
    return "toolu_01" + digest.hexdigest()[:22]


def _planned_blocks(body: dict[str, Any], directives: Directives) -> list[Block]:
    blocks: list[Block] = []
    if _thinking_on(body):
        text = directives.thinking
        if text is None:
            text = default_thinking(directives.text)
        budget = body["thinking"].get("budget_tokens")
        if isinstance(budget, int) and count_text(text) > budget:
            text = text[: budget * CHARS_PER_TOKEN]
        blocks.append(ThinkingOut(text, sign_thinking(text)))
    tools: list[tuple[str, Any]] = list(directives.tools)
    if not tools:
        forced = _forced_tool(body)
        if forced is not None:
            tools.append((str(forced.get("name")), example_for(forced.get("input_schema"))))
    if directives.reply is not None:
        blocks.append(TextOut(directives.reply))
    elif directives.tokens is not None:
        blocks.append(TextOut(filler_text(directives.tokens)))
    elif not tools:
        blocks.append(TextOut(ECHO_PREFIX + directives.text[:ECHO_LIMIT]))
    server = _server_tool_names(body)
    for index, (name, tool_input) in enumerate(tools):
        input_json = orjson.dumps(tool_input).decode()
        if name in server:
            tool_id = "srvtoolu_01" + _tool_id(body, index)[len("toolu_01") :]
            blocks.append(ToolUseOut(tool_id, name, tool_input, input_json, server=True))
        else:
            blocks.append(ToolUseOut(_tool_id(body, index), name, tool_input, input_json))
    return blocks


def _first_stop(text: str, stop_sequences: list[str]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for sequence in stop_sequences:
        at = text.find(sequence)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, sequence)
    return best


def build_reply(
    body: dict[str, Any],
    directives: Directives,
    *,
    message_id: str,
    input_tokens: int,
    cache: CacheUsage,
) -> Reply:
    """Decide the content, stop reason and usage of the reply to a validated body.

    Blocks come in the order thinking, text, tool_use. Generation stops at the first stop
    sequence found in a text block (the sequence itself is not emitted) or when `max_tokens`
    output tokens are spent (a text or thinking block is cut; a tool_use block that does not fit
    whole is dropped).
    """
    reply = Reply(id=message_id, model=body["model"])
    budget: int = body.get("max_tokens") or 0
    stop_sequences = body.get("stop_sequences") or []
    used = 0
    for block in _planned_blocks(body, directives):
        if isinstance(block, ToolUseOut):
            cost = count_text(block.input_json)
            if used + cost > budget:
                reply.stop_reason = "max_tokens"
                break
            reply.blocks.append(block)
            if not block.server:
                reply.stop_reason = "tool_use"
            used += cost
            continue
        text = block.text if isinstance(block, TextOut) else block.thinking
        stop = _first_stop(text, stop_sequences) if isinstance(block, TextOut) else None
        if stop is not None:
            text = text[: stop[0]]
        room = budget - used
        if room <= 0 and text:
            reply.stop_reason = "max_tokens"
            break
        if count_text(text) > room:
            text = text[: room * CHARS_PER_TOKEN]
            stop = None
            reply.stop_reason = "max_tokens"
        used += count_text(text)
        if isinstance(block, TextOut):
            reply.blocks.append(TextOut(text))
        else:
            reply.blocks.append(ThinkingOut(text, sign_thinking(text)))
        if stop is not None:
            reply.stop_reason, reply.stop_sequence = "stop_sequence", stop[1]
        if reply.stop_reason in ("max_tokens", "stop_sequence"):
            break
    extra = dict(directives.usage)
    server = _server_tool_names(body)
    for block in reply.blocks:  # each server tool use is counted, unless [[usage]] says otherwise
        if isinstance(block, ToolUseOut) and block.server:
            count = server[block.name]
            if count not in directives.usage:
                used_before = extra.get(count, 0)
                extra[count] = (used_before if isinstance(used_before, int) else 0) + 1
    counted = extra.pop("input_tokens", input_tokens)
    reply.usage = Usage(
        input_tokens=counted if isinstance(counted, int) else input_tokens,
        output_tokens=used,
        cache=cache,
        reported=tuple(extra.items()),
    )
    return reply
