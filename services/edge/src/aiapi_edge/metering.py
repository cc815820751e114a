"""Usage as the upstream reports it, folded into the meters (pure).

Usage comes from a JSON message, or from a stream's ``message_start`` and ``message_delta``
events; a later report replaces the earlier values, never adds to them. The cache-write total
counts as the 5-minute cache when the upstream does not split it by TTL (and any part of the
total the split does not explain counts as 5-minute too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiapi_shared.events.usage_v1 import Usage

from aiapi_edge.openai.usage import merge_usage, upstream_thinking_tokens


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


_OPTION_LIMIT = 64  # a reported tier/region/speed name longer than this is not one


def _option(value: object) -> str:
    return value if isinstance(value, str) and len(value) <= _OPTION_LIMIT else ""


def usage_from_anthropic(usage: Mapping[str, Any]) -> Usage:
    """Every meter of an Anthropic ``usage`` object (see :func:`meters_from_anthropic`)."""
    return Usage(**meters_from_anthropic(usage))


def meters_from_anthropic(usage: Mapping[str, Any]) -> dict[str, int | str]:
    """The meters as a plain dict (the hot path serialises it without a model): the five token
    counts, thinking tokens, the server tools' requests (``server_tool_use``) and the priced
    options the upstream reports (``service_tier``, ``inference_geo``, ``speed``)."""
    tools = usage.get("server_tool_use")
    if not isinstance(tools, Mapping):
        tools = {}
    split = usage.get("cache_creation")
    split_5m = split_1h = 0
    if isinstance(split, Mapping):
        split_5m = _count(split.get("ephemeral_5m_input_tokens"))
        split_1h = _count(split.get("ephemeral_1h_input_tokens"))
    total = _count(usage.get("cache_creation_input_tokens"))
    unexplained = max(0, total - split_5m - split_1h)
    return {
        "input_tokens": _count(usage.get("input_tokens")),
        "output_tokens": _count(usage.get("output_tokens")),
        "cache_read_input_tokens": _count(usage.get("cache_read_input_tokens")),
        "cache_creation_5m_input_tokens": split_5m + unexplained,
        "cache_creation_1h_input_tokens": split_1h,
        "thinking_tokens": upstream_thinking_tokens(usage) or 0,
        "web_search_requests": _count(tools.get("web_search_requests")),
        "web_fetch_requests": _count(tools.get("web_fetch_requests")),
        "service_tier": _option(usage.get("service_tier")),
        "inference_geo": _option(usage.get("inference_geo")),
        "speed": _option(usage.get("speed")),
    }


# The stream events :meth:`UsageMeter.event` reads; the others it ignores.
METERED_EVENTS = frozenset((b"message_start", b"message_delta", b"message_stop", b"error"))


class UsageMeter:
    """Accumulates one response's usage; feed it the message or the stream's events."""

    __slots__ = ("_meters", "_usage", "complete", "error")

    def __init__(self) -> None:
        self._usage: dict[str, Any] = {}
        self._meters: dict[str, int | str] | None = None  # meters() until the usage changes
        self.complete = False
        self.error: dict[str, Any] | None = None

    @property
    def usage(self) -> dict[str, Any]:
        """The usage as the upstream reported it (merged over the stream's events)."""
        return self._usage

    @usage.setter
    def usage(self, usage: dict[str, Any]) -> None:
        self._usage = usage
        self._meters = None

    def message(self, message: Mapping[str, Any]) -> None:
        """A non-streaming answer: its usage is final."""
        self._merge(message.get("usage"))
        self.complete = True

    def event(self, name: bytes, data: bytes) -> None:
        """One SSE event from the upstream; only the few that carry usage are parsed."""
        if name == b"message_start":
            message = _loads(data).get("message")
            if isinstance(message, Mapping):
                self._merge(message.get("usage"))
        elif name == b"message_delta":
            self._merge(_loads(data).get("usage"))
        elif name == b"message_stop":
            self.complete = True
        elif name == b"error":
            self.error = _loads(data)

    def event_json(self, name: str, data: Mapping[str, Any]) -> None:
        """The same, for a caller that has already parsed the event (the OpenAI route)."""
        if name == "message_start":
            message = data.get("message")
            if isinstance(message, Mapping):
                self._merge(message.get("usage"))
        elif name == "message_delta":
            self._merge(data.get("usage"))
        elif name == "message_stop":
            self.complete = True
        elif name == "error":
            self.error = dict(data)

    def result(self) -> Usage:
        return usage_from_anthropic(self.usage)

    def meters(self) -> dict[str, int | str]:
        """The usage as meters (:func:`meters_from_anthropic`), computed once per change of the
        usage: the cost headers, the pool's count and the usage event all read them. The dict is
        shared: do not change it."""
        meters = self._meters
        if meters is None:
            meters = self._meters = meters_from_anthropic(self._usage)
        return meters

    def _merge(self, update: object) -> None:
        if isinstance(update, Mapping):
            self.usage = merge_usage(self._usage, update)


def _loads(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
