"""``POST /v1/responses``: the OpenAI Responses API as a :class:`.openai_route.Dialect`.

The route itself is :class:`.openai_route.OpenAIRoute` (admission, upstream, metering, billing
exactly as the chat route; the usage event's ``route`` is ``responses``); this module only binds
the pure translations of :mod:`aiapi_edge.openai` (``responses_request``, ``responses_response``,
``responses_stream``) to it. The stream is written as ``event: <type>`` / ``data: <json>`` frames
and simply ends after ``response.completed`` (no ``[DONE]``); a stream cut short ends with
``response.failed``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiapi_shared.events.usage_v1 import Route

from aiapi_edge.gateway import Exchange
from aiapi_edge.openai import ModelTraits
from aiapi_edge.openai.responses_items import response_id
from aiapi_edge.openai.responses_request import to_anthropic_from_responses
from aiapi_edge.openai.responses_response import to_response
from aiapi_edge.openai.responses_stream import ResponseEvents
from aiapi_edge.openai_route import StreamWriter, Translation


def event_frame(event: Mapping[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _ResponsesStream:
    def __init__(self, events: ResponseEvents) -> None:
        self._events = events

    def frames(self, name: str, event: Mapping[str, Any]) -> bytes:
        return b"".join(event_frame(e) for e in self._events.feed(name, event))

    def end(self) -> bytes:
        return b""

    def failure(self, message: str, type_: str, code: str | None) -> bytes:
        return b"".join(event_frame(e) for e in self._events.failure(message, type_))


class _ResponsesTranslation:
    def __init__(self, body: Mapping[str, Any], traits: ModelTraits, request_id: str) -> None:
        translated = to_anthropic_from_responses(body, traits)
        self.anthropic_body = translated.anthropic_body
        self.stream = translated.stream
        self._echo = translated.echo
        self._namespaced = translated.namespaced
        self._id = response_id(request_id)
        self._created_at = int(time.time())

    def completion(self, message: Mapping[str, Any], exchange: Exchange) -> bytes:
        response = to_response(
            message,
            resp_id=self._id,
            created_at=self._created_at,
            model=exchange.requested_model,
            echo=self._echo,
            namespaced=self._namespaced,
        )
        return orjson.dumps(response)

    def stream_writer(self, exchange: Exchange) -> StreamWriter:
        events = ResponseEvents(
            self._id,
            created_at=self._created_at,
            model=exchange.requested_model,
            echo=self._echo,
            namespaced=self._namespaced,
        )
        return _ResponsesStream(events)


class ResponsesDialect:
    """``POST /v1/responses``."""

    route: Route = "responses"

    def translate(
        self, body: Mapping[str, Any], traits: ModelTraits, request_id: str
    ) -> Translation:
        return _ResponsesTranslation(body, traits, request_id)
