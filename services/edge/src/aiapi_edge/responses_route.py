"""``POST /v1/responses``: the OpenAI Responses API as a :class:`.openai_route.Dialect`.

The route itself is :class:`.openai_route.OpenAIRoute` (admission, upstream, metering, billing
exactly as the chat route; the usage event's ``route`` is ``responses``); this module only binds
the pure translations of :mod:`aiapi_edge.openai` (``responses_request``, ``responses_response``,
``responses_stream``) to it. The stream is written as ``event: <type>`` / ``data: <json>`` frames
and simply ends after ``response.completed`` (no ``[DONE]``); a stream cut short ends with
``response.failed``.

With the operator's store on (:mod:`.response_store`), ``previous_response_id`` is looked up for
the caller's account before translation (unknown: a 400 naming it), and a finished response
(completed or incomplete; never a failed one) is stored unless the request said ``store: false``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiapi_shared.events.usage_v1 import Route

from aiapi_edge.gateway import Exchange
from aiapi_edge.openai import ModelTraits, TranslationError
from aiapi_edge.openai.responses_items import response_id
from aiapi_edge.openai.responses_request import to_anthropic_from_responses
from aiapi_edge.openai.responses_response import to_response
from aiapi_edge.openai.responses_stream import ResponseEvents
from aiapi_edge.openai_route import StreamWriter, Translation
from aiapi_edge.response_store import ResponseStore


def event_frame(event: Mapping[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


# Called with the output items of a response that finished (completed or incomplete).
OnFinished = Callable[[list[dict[str, Any]]], None]
_FINISHED = frozenset({"response.completed", "response.incomplete"})


class _ResponsesStream:
    def __init__(self, events: ResponseEvents, on_finished: OnFinished) -> None:
        self._events = events
        self._on_finished = on_finished

    def frames(self, name: str, event: Mapping[str, Any]) -> bytes:
        out = self._events.feed(name, event)
        for e in out:
            if e["type"] in _FINISHED:
                self._on_finished(e["response"]["output"])
        return b"".join(event_frame(e) for e in out)

    def end(self) -> bytes:
        return b""

    def failure(self, message: str, type_: str, code: str | None) -> bytes:
        return b"".join(event_frame(e) for e in self._events.failure(message, type_))


class _ResponsesTranslation:
    def __init__(
        self,
        body: Mapping[str, Any],
        traits: ModelTraits,
        request_id: str,
        account_id: str,
        store: ResponseStore | None,
    ) -> None:
        previous = body.get("previous_response_id")
        history = None
        if store is not None and isinstance(previous, str) and previous:
            history = store.conversation(previous, account_id)
            if history is None:
                raise TranslationError(
                    f"Previous response with id '{previous}' not found.",
                    "previous_response_id",
                    "previous_response_not_found",
                )
        translated = to_anthropic_from_responses(body, traits, history)
        self.anthropic_body = translated.anthropic_body
        self.stream = translated.stream
        self._store = store if body.get("store") is not False else None
        self._echo = {**translated.echo, "store": self._store is not None}
        self._namespaced = translated.namespaced
        self._input = translated.input_items
        self._previous = previous if history is not None else None
        self._account_id = account_id
        self._id = response_id(request_id)
        self._created_at = int(time.time())

    def _keep(self, output: list[dict[str, Any]]) -> None:
        if self._store is not None:
            self._store.put(self._id, self._account_id, self._previous, [*self._input, *output])

    def completion(self, message: Mapping[str, Any], exchange: Exchange) -> bytes:
        response = to_response(
            message,
            resp_id=self._id,
            created_at=self._created_at,
            model=exchange.requested_model,
            echo=self._echo,
            namespaced=self._namespaced,
        )
        self._keep(response["output"])
        return orjson.dumps(response)

    def stream_writer(self, exchange: Exchange) -> StreamWriter:
        events = ResponseEvents(
            self._id,
            created_at=self._created_at,
            model=exchange.requested_model,
            echo=self._echo,
            namespaced=self._namespaced,
        )
        return _ResponsesStream(events, self._keep)


class ResponsesDialect:
    """``POST /v1/responses``; ``store`` is the operator's optional response store."""

    route: Route = "responses"

    def __init__(self, store: ResponseStore | None = None) -> None:
        self.store = store

    def translate(
        self, body: Mapping[str, Any], traits: ModelTraits, request_id: str, account_id: str
    ) -> Translation:
        return _ResponsesTranslation(body, traits, request_id, account_id, self.store)
