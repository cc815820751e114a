"""The OpenAI routes: ``POST /v1/chat/completions`` and ``POST /v1/responses``, OpenAI in, Claude
upstream, OpenAI out.

The pure translations are :mod:`aiapi_edge.openai`; this module loads, calls and writes, the same
way for both routes: a :class:`Dialect` says how one route translates a request and renders its
answer. Admission, the upstream pool, metering and the spool are the Anthropic route's
(:class:`.Gateway`), and the meter reads the upstream's own usage, so the usage event equals the
Anthropic route's for the same request but for ``route``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.events.usage_v1 import Route

from aiapi_edge.affinity import conversation_of
from aiapi_edge.asgi import EVENT_STREAM, Headers, Receive, Scope, Send, send_whole
from aiapi_edge.body import DEFAULT_MAX_TOKENS, parse_json_object
from aiapi_edge.errors import GatewayError, invalid_request
from aiapi_edge.extension import INSUFFICIENT_BALANCE_MESSAGE
from aiapi_edge.gateway import Exchange, Gateway
from aiapi_edge.http_client import HttpClientError
from aiapi_edge.openai import (
    ChunkTranslator,
    ModelTraits,
    TranslationError,
    openai_error_from_anthropic,
    to_anthropic,
    to_openai_completion,
)
from aiapi_edge.quote import cost_headers
from aiapi_edge.sse import SseReader
from aiapi_edge.upstream import Upstream, UpstreamAnswer

_DONE = b"data: [DONE]\n\n"
_PING = b": ping\n\n"


class OpenAIError(Exception):
    """An error already in OpenAI form (a translation error or an upstream answer)."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


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


class OpenAIRoute:
    """An OpenAI route; its :class:`Dialect` says which one."""

    def __init__(
        self,
        gateway: Gateway,
        upstream: Upstream,
        dialect: Dialect,
        *,
        ping_interval: float,
        drain_s: float,
    ) -> None:
        self._gw = gateway
        self._dialect = dialect
        self._upstream = upstream
        self._ping_interval = ping_interval
        self._drain_s = drain_s

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw: bytes,
        request_id: str,
        caller: KeyRecord,
    ) -> None:
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
            raise OpenAIError(400, exc.to_openai()) from None
        anthropic_body = dict(translated.anthropic_body, model=model.id)
        self._gw.check_priced(scope, b"", anthropic_body)
        payload = orjson.dumps(anthropic_body)
        exchange = await self._gw.admit(
            request_id=request_id,
            route=self._dialect.route,
            caller=caller,
            requested_model=requested,
            body_size=len(payload),
            max_tokens=int(anthropic_body["max_tokens"]),
            body=anthropic_body,
        )
        try:
            answer = await self._upstream.send(
                "/v1/messages",
                payload,
                scope["headers"],
                conversation=conversation_of(
                    scope["headers"], anthropic_body, caller.account_id, caller.key_id
                ),
            )
        except GatewayError as error:
            exchange.status_code, exchange.outcome = error.status, "upstream_error"
            await self._gw.record(exchange)
            raise
        try:
            if answer.status != 200:
                await self._error(exchange, answer)
            elif translated.stream:
                await self._stream(exchange, answer, receive, send, translated)
            else:
                await self._json(exchange, answer, send, translated)
        except (GatewayError, OpenAIError):
            raise
        except BaseException:
            exchange.outcome, exchange.status_code = "gateway_error", 500
            raise
        finally:
            answer.close()
            await self._gw.record(exchange)

    async def _error(self, exchange: Exchange, answer: UpstreamAnswer) -> None:
        exchange.status_code, exchange.outcome = answer.status, "upstream_error"
        await self._gw.record(exchange)
        data = await answer.read()
        try:
            parsed: object = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        raise OpenAIError(answer.status, openai_error_from_anthropic(answer.status, parsed))

    async def _json(
        self, exchange: Exchange, answer: UpstreamAnswer, send: Send, translated: Translation
    ) -> None:
        try:
            data = await answer.read()
            message = orjson.loads(data)
        except (HttpClientError, orjson.JSONDecodeError) as exc:
            exchange.status_code, exchange.outcome = 502, "upstream_error"
            raise GatewayError(502, "api_error", "The upstream connection failed.") from exc
        if not isinstance(message, dict):
            message = {}
        exchange.meter.message(message)
        await self._gw.record(exchange)
        body = translated.completion(message, exchange)
        headers = openai_headers(exchange.request_id) + cost_headers(self._gw.catalogue, exchange)
        await send_whole(send, 200, body, headers)

    async def _stream(
        self,
        exchange: Exchange,
        answer: UpstreamAnswer,
        receive: Receive,
        send: Send,
        translated: Translation,
    ) -> None:
        reader = SseReader()
        meter = exchange.meter
        guard = self._gw.hold_guard(exchange)
        writer = translated.stream_writer(exchange)
        headers = [(b"content-type", EVENT_STREAM), (b"cache-control", b"no-cache")]
        headers += openai_headers(exchange.request_id)
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def on_chunk(chunk: bytes, client_present: bool) -> bool:
            if not client_present:
                exchange.client_disconnected, exchange.outcome = True, "client_disconnected"
            out: list[bytes] = []
            for name, data in reader.feed(chunk):
                if guard is not None:
                    guard.observe(name, data)
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(event, dict):
                    continue
                event_name = name.decode("latin-1")
                meter.event_json(event_name, event)
                out.append(writer.frames(event_name, event))
            if meter.complete:
                await self._gw.record(exchange)  # durable before the client sees the end
                out.append(writer.end())
            body = b"".join(out)
            if client_present and body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            return guard is not None and not meter.complete and guard.must_end()

        async def on_idle() -> None:
            await send({"type": "http.response.body", "body": _PING, "more_body": True})

        end, _ = await exchange.pump_stream(
            answer,
            receive,
            guard,
            on_chunk=on_chunk,
            on_idle=on_idle,
            is_complete=lambda: meter.complete or meter.error is not None,
            ping_interval=self._ping_interval,
            drain_s=self._drain_s,
        )
        tail = b""
        if end == "cut":
            tail = writer.failure(
                INSUFFICIENT_BALANCE_MESSAGE, "insufficient_balance", "insufficient_balance"
            )
        elif end == "truncated":
            tail = writer.failure("The upstream stream ended early.", "api_error", None)
        await self._gw.record(exchange)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
