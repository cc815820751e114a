"""The OpenAI routes: ``POST /v1/chat/completions`` and ``POST /v1/responses``, OpenAI in, Claude
upstream, OpenAI out.

The pure translations are :mod:`aiapi_edge.openai`; a :class:`Dialect` says how one route
translates a request and renders its answer, and this module binds it to the request skeleton
(:mod:`.inference`). Admission, the upstream pool, metering and the spool are the skeleton's, the
same as the Anthropic route's, and the meter reads the upstream's own usage, so the usage event
equals the Anthropic route's for the same request but for ``route``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiapi_shared.catalogue import ModelEntry
from aiapi_shared.errors import Problem
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.events.usage_v1 import Route

from aiapi_edge.affinity import conversation_of
from aiapi_edge.asgi import EVENT_STREAM, JSON_TYPE, Headers, Receive, Scope, Send
from aiapi_edge.body import DEFAULT_MAX_TOKENS, parse_json_object
from aiapi_edge.errors import GatewayError, invalid_request, upstream_failed
from aiapi_edge.gateway import Exchange, Gateway
from aiapi_edge.inference import Ending, Inference
from aiapi_edge.metering import UsageMeter
from aiapi_edge.openai import (
    ChunkTranslator,
    ModelTraits,
    TranslationError,
    openai_error_from_anthropic,
    to_anthropic,
    to_openai_completion,
)
from aiapi_edge.sse import SseEvent
from aiapi_edge.upstream import UpstreamAnswer

_DONE = b"data: [DONE]\n\n"
_PING = b": ping\n\n"


def openai_headers(request_id: str) -> Headers:
    rid = request_id.encode()
    return [(b"request-id", rid), (b"x-request-id", rid)]


def data_frame(chunk: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class StreamWriter(Protocol):
    """One stream's rendering: upstream events in, the client's bytes out."""

    def frames(self, name: str, event: Mapping[str, Any]) -> bytes:
        """The bytes for one upstream event (may be empty)."""

    def end(self) -> bytes:
        """What follows the last event of a complete stream."""

    def failure(self, message: str, type_: str, code: str | None) -> bytes:
        """The error that ends a stream cut short (after which the stream just closes)."""


class Translation(Protocol):
    """One translated request: the upstream body and how to render the answer."""

    @property
    def anthropic_body(self) -> dict[str, Any]: ...

    @property
    def stream(self) -> bool: ...

    def completion(self, message: Mapping[str, Any], exchange: Exchange) -> bytes:
        """The JSON answer for a whole upstream message."""

    def stream_writer(self, exchange: Exchange) -> StreamWriter: ...


class Dialect(Protocol):
    """One OpenAI route's request translation (raises :class:`TranslationError`)."""

    route: Route

    def translate(
        self, body: Mapping[str, Any], traits: ModelTraits, request_id: str, account_id: str
    ) -> Translation: ...


class _ChatStream:
    def __init__(self, translator: ChunkTranslator) -> None:
        self._translator = translator

    def frames(self, name: str, event: Mapping[str, Any]) -> bytes:
        return b"".join(data_frame(c) for c in self._translator.feed(name, event))

    def end(self) -> bytes:
        return _DONE

    def failure(self, message: str, type_: str, code: str | None) -> bytes:
        return data_frame(self._translator.error_chunk(message, type_, code))


class _ChatTranslation:
    def __init__(self, body: Mapping[str, Any], traits: ModelTraits) -> None:
        translated = to_anthropic(body, traits)
        self.anthropic_body = translated.anthropic_body
        self.stream = translated.stream
        self._include_usage = translated.include_usage
        self._legacy = translated.legacy_functions

    def completion(self, message: Mapping[str, Any], exchange: Exchange) -> bytes:
        completion = to_openai_completion(
            message,
            created=int(time.time()),
            request_model=exchange.requested_model,
            legacy_functions=self._legacy,
        )
        return orjson.dumps(completion)

    def stream_writer(self, exchange: Exchange) -> StreamWriter:
        translator = ChunkTranslator(
            created=int(time.time()),
            request_model=exchange.requested_model,
            include_usage=self._include_usage,
            legacy_functions=self._legacy,
        )
        return _ChatStream(translator)


class ChatDialect:
    """``POST /v1/chat/completions``."""

    route: Route = "openai"

    def translate(
        self, body: Mapping[str, Any], traits: ModelTraits, request_id: str, account_id: str
    ) -> Translation:
        return _ChatTranslation(body, traits)


class _TranslatedStream:
    """A :class:`StreamWriter` as the skeleton's :class:`.inference.StreamForm`: each upstream
    event is parsed once, metered, and rendered by the dialect."""

    __slots__ = ("_meter", "_request_id", "_writer")
    events = None  # every event is rendered anew

    def __init__(self, writer: StreamWriter, meter: UsageMeter, request_id: str) -> None:
        self._writer = writer
        self._meter = meter
        self._request_id = request_id

    def headers(self, answer: UpstreamAnswer) -> Headers:
        headers = [(b"content-type", EVENT_STREAM), (b"cache-control", b"no-cache")]
        return headers + openai_headers(self._request_id)

    def feed(self, chunk: bytes, events: list[SseEvent]) -> bytes:
        out: list[bytes] = []
        for name, data in events:
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            event_name = name.decode("latin-1")
            self._meter.event_json(event_name, event)
            out.append(self._writer.frames(event_name, event))
        return b"".join(out)

    def end(self) -> bytes:
        return self._writer.end()

    def ping(self, at_boundary: bool) -> bytes:
        return _PING  # the client's frames are always whole

    def failure(self, error: GatewayError, at_boundary: bool) -> bytes:
        wire = error.wire
        return self._writer.failure(error.message, wire.openai, error.code or wire.code)


@dataclass(slots=True)
class _OpenAIRequest:
    """One translated request, as the skeleton (:class:`.inference.Inference`) runs it."""

    requested_model: str
    model: ModelEntry
    payload: bytes
    max_tokens: int
    translation: Translation
    estimate_body: Mapping[str, Any] | None
    conversation: str

    @property
    def stream(self) -> bool:
        return self.translation.stream

    def answer(self, exchange: Exchange, answer: UpstreamAnswer, data: bytes) -> Ending:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise upstream_failed() from exc
        if not isinstance(message, dict):
            message = {}
        exchange.meter.message(message)
        body = self.translation.completion(message, exchange)
        return Ending(body, 200, openai_headers(exchange.request_id), JSON_TYPE)

    def error(self, exchange: Exchange, answer: UpstreamAnswer, data: bytes) -> Ending:
        try:
            parsed: object = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        body = orjson.dumps(openai_error_from_anthropic(answer.status, parsed))
        return Ending(body, answer.status, openai_headers(exchange.request_id), JSON_TYPE)

    def stream_form(self, exchange: Exchange) -> _TranslatedStream:
        writer = self.translation.stream_writer(exchange)
        return _TranslatedStream(writer, exchange.meter, exchange.request_id)


class OpenAIRoute:
    """An OpenAI route; its :class:`Dialect` says which one."""

    def __init__(self, gateway: Gateway, inference: Inference, dialect: Dialect) -> None:
        self._gw = gateway
        self._inference = inference
        self._dialect = dialect
        self.route: Route = dialect.route

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw: bytes,
        request_id: str,
        caller: KeyRecord,
    ) -> None:
        await self._inference.serve(self, scope, receive, send, raw, request_id, caller)

    def prepare(
        self, scope: Scope, raw: bytes, caller: KeyRecord, request_id: str
    ) -> _OpenAIRequest:
        body = parse_json_object(raw)
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            raise invalid_request("You must provide a model parameter.", "model")
        model = self._gw.resolve_model(requested)
        traits = ModelTraits(
            supports_adaptive_thinking=model.traits.adaptive_thinking,
            supports_effort=model.traits.effort,
            rejects_sampling_params=model.traits.rejects_sampling_params,
            default_max_tokens=DEFAULT_MAX_TOKENS,
        )
        try:
            translated = self._dialect.translate(body, traits, request_id, caller.account_id)
        except TranslationError as exc:
            raise GatewayError(
                Problem.INVALID_REQUEST, exc.message, param=exc.param, code=exc.code
            ) from None
        anthropic_body = dict(translated.anthropic_body, model=model.id)
        self._gw.check_priced(scope, b"", anthropic_body)
        conversation = conversation_of(
            scope["headers"], anthropic_body, caller.account_id, caller.key_id
        )
        return _OpenAIRequest(
            requested,
            model,
            orjson.dumps(anthropic_body),
            int(anthropic_body["max_tokens"]),
            translated,
            anthropic_body,
            conversation,
        )
