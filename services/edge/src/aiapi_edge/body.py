"""Reading a Messages request body once and changing only what the contract changes.

The edge forwards the client's bytes. Two changes are allowed, both made on the bytes so that
everything else (thinking blocks, unknown fields, key order, escapes) reaches the upstream
unchanged: a missing ``max_tokens`` is inserted as the first member, and an aliased ``model``
value is replaced in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from aiapi_edge.errors import invalid_request

DEFAULT_MAX_TOKENS = 4096

# A JSON string (consumed whole, escapes included) or a structural character.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]', re.DOTALL)
_LEADING_SPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class MessagesBody:
    """What the edge needs from a request (parsed once) and the bytes to send upstream."""

    raw: bytes
    parsed: dict[str, Any]
    model: str
    stream: bool
    max_tokens: int


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid_request(
            "There was an error parsing the body of your request: it is not valid JSON"
        ) from None
    if not isinstance(parsed, dict):
        raise invalid_request("The request body must be a JSON object.")
    return parsed


def read_messages_body(raw: bytes, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> MessagesBody:
    """Parse the body; insert ``max_tokens`` when it is missing. 400 for what cannot be sent."""
    parsed = parse_json_object(raw)
    model = parsed.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model: Field required", "model")
    if "max_tokens" not in parsed:
        raw = insert_first_member(raw, b'"max_tokens":' + str(default_max_tokens).encode())
        parsed["max_tokens"] = default_max_tokens
    max_tokens = parsed["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid_request("max_tokens: Input should be a positive integer", "max_tokens")
    return MessagesBody(raw, parsed, model, parsed.get("stream") is True, max_tokens)


def insert_first_member(raw: bytes, member: bytes) -> bytes:
    """``{"a":1}`` + ``"b":2`` → ``{"b":2,"a":1}``; the rest of the bytes stay as they were."""
    start = raw.index(b"{") + 1
    rest = raw[start:].lstrip(_LEADING_SPACE)
    separator = b"" if rest.startswith(b"}") else b","
    return raw[:start] + member + separator + raw[start:]


def replace_top_level_string(raw: bytes, key: str, value: str) -> bytes:
    """Replace the string value of a top-level member, leaving every other byte in place."""
    span = _top_level_value_span(raw, orjson.dumps(key))
    if span is None:
        return raw
    start, end = span
    return raw[:start] + orjson.dumps(value) + raw[end:]


def _top_level_value_span(raw: bytes, encoded_key: bytes) -> tuple[int, int] | None:
    depth = 0
    previous = b""
    expect_value = False
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if expect_value and previous == b":" and depth == 1:
            return (match.start(), match.end()) if token[:1] == b'"' else None
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif token[:1] == b'"' and depth == 1 and previous in (b"{", b","):
            expect_value = orjson.loads(token) == orjson.loads(encoded_key)
        previous = token if token[:1] != b'"' else b'"'
    return None
