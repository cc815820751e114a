"""Directives: `[[...]]` instructions embedded in the last user text that choose the reply.

    [[reply: exact text]]            the text block, verbatim (up to the closing brackets)
    [[tool: name {"json": "input"}]] a tool_use block (repeatable; the JSON object is optional);
                                     a server_tool_use block when ``name`` is a server tool the
                                     request declares (web_search, web_fetch), each counted in
                                     usage.server_tool_use unless [[usage: ...]] gives the count
    [[tokens: 500]]                  a text block of exactly N output tokens of filler
    [[thinking: text]]               the thinking text, when thinking is on
    [[fail: kind key=value ...]]     a fault (see faults.py), e.g. [[fail: 429 retry_after=3]]
    [[usage: key=value ...]]         usage to report beyond tokens, e.g. [[usage:
                                     web_search_requests=3 service_tier=priority]]; keys:
                                     web_search_requests, web_fetch_requests (server_tool_use),
                                     service_tier, inference_geo, speed, and input_tokens (to
                                     report a long-context request without sending one)

The directives are removed from the text; what remains (stripped) is what the default reply
echoes. Pure parsing, no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiapi_simulator.faults import Fault, FaultError, build_fault

_OPEN = "[["
_CLOSE = "]]"
_HEAD = re.compile(r"\[\[\s*(reply|tool|tokens|thinking|fail|usage)\s*:\s?")
USAGE_COUNTS = frozenset({"web_search_requests", "web_fetch_requests", "input_tokens"})
USAGE_NAMES = frozenset({"service_tier", "inference_geo", "speed"})
_TOOL_NAME = re.compile(r"\s*([A-Za-z0-9_.:-]+)\s*")
_DECODER = json.JSONDecoder()


class DirectiveError(ValueError):
    """A directive that cannot be understood; answered as a 400 so a test's typo is loud."""


@dataclass(slots=True)
class Directives:
    """What the directives in one prompt asked for."""

    text: str
    reply: str | None = None
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tokens: int | None = None
    thinking: str | None = None
    fault: Fault | None = None
    usage: dict[str, int | str] = field(default_factory=dict)


def _parse_tool(source: str, start: int) -> tuple[tuple[str, dict[str, Any]], int]:
    match = _TOOL_NAME.match(source, start)
    if match is None:
        raise DirectiveError("[[tool: ...]] needs a tool name")
    position = match.end()
    tool_input: Any = {}
    if source.startswith("{", position):
        try:
            tool_input, position = _DECODER.raw_decode(source, position)
        except json.JSONDecodeError as exc:
            raise DirectiveError(f"[[tool: ...]] input is not valid JSON: {exc.msg}") from None
        if not isinstance(tool_input, dict):
            raise DirectiveError("[[tool: ...]] input must be a JSON object")
    while position < len(source) and source[position].isspace():
        position += 1
    if not source.startswith(_CLOSE, position):
        raise DirectiveError("[[tool: ...]] is not closed by ]]")
    return (match.group(1), tool_input), position + len(_CLOSE)


def _parse_fault(argument: str) -> Fault:
    words = argument.split()
    if not words:
        raise DirectiveError("[[fail: ...]] needs a fault kind")
    options: dict[str, str] = {}
    for word in words[1:]:
        name, sep, value = word.partition("=")
        if not sep:
            raise DirectiveError(f"[[fail: ...]] option {word!r} is not key=value")
        options[name] = value
    try:
        return build_fault(words[0], options)
    except FaultError as exc:
        raise DirectiveError(f"[[fail: ...]] {exc}") from None


def _apply(found: Directives, name: str, argument: str) -> None:
    if name == "reply":
        found.reply = argument
    elif name == "thinking":
        found.thinking = argument
    elif name == "tokens":
        try:
            found.tokens = int(argument.strip())
        except ValueError:
            raise DirectiveError(f"[[tokens: N]] needs an integer, got {argument!r}") from None
        if found.tokens < 0:
            raise DirectiveError("[[tokens: N]] must not be negative")
    elif name == "usage":
        found.usage.update(_parse_usage(argument))
    else:
        found.fault = _parse_fault(argument)


def _parse_usage(argument: str) -> dict[str, int | str]:
    reported: dict[str, int | str] = {}
    for word in argument.split():
        key, sep, value = word.partition("=")
        if not sep or key not in USAGE_COUNTS | USAGE_NAMES:
            raise DirectiveError(f"[[usage: ...]] does not know {word!r}")
        if key in USAGE_NAMES:
            reported[key] = value
            continue
        if not value.isdigit():
            raise DirectiveError(f"[[usage: ...]] {key} needs a count, got {value!r}")
        reported[key] = int(value)
    return reported


def parse_directives(text: str) -> Directives:
    """Find and remove the directives in `text`."""
    if _OPEN not in text:
        return Directives(text=text.strip())
    found = Directives(text="")
    kept: list[str] = []
    position = 0
    while True:
        match = _HEAD.search(text, position)
        if match is None:
            break
        kept.append(text[position : match.start()])
        name = match.group(1)
        if name == "tool":
            tool, position = _parse_tool(text, match.end())
            found.tools.append(tool)
            continue
        end = text.find(_CLOSE, match.end())
        if end < 0:
            raise DirectiveError(f"[[{name}: ...]] is not closed by ]]")
        _apply(found, name, text[match.end() : end])
        position = end + len(_CLOSE)
    kept.append(text[position:])
    found.text = "".join(kept).strip()
    return found
