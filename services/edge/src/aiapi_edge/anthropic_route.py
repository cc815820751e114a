"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the passthrough routes.

The client's bytes go upstream unchanged but for what :mod:`.body` changes; the answer comes back
unchanged but for its headers (:mod:`.headers`) and, on errors, the ``request_id`` in the body
(which must equal the edge's ``request-id`` header). The stream is read only to meter it.
``/v1/messages`` runs through the shared request skeleton (:mod:`.inference`); this module says
only how its body is read and its answer written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiapi_shared.catalogue import ModelEntry
from aiapi_shared.errors import Problem, problem_for_status
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.events.usage_v1 import Route

from aiapi_edge.affinity import conversation_of, metadata_of
from aiapi_edge.asgi import EVENT_STREAM, Headers, Receive, Scope, Send, send_whole
from aiapi_edge.body import parse_json_object, read_messages_body, replace_top_level_string
from aiapi_edge.count_limit import PerKeyRate
from aiapi_edge.errors import (
    WIRE,
    GatewayError,
    anthropic_error_body,
    invalid_request,
    sse_error_event,
)
from aiapi_edge.estimate import media_body
from aiapi_edge.gateway import Exchange, Gateway
from aiapi_edge.headers import client_response_headers
from aiapi_edge.inference import Ending, Inference
from aiapi_edge.metering import METERED_EVENTS, UsageMeter
from aiapi_edge.sse import PING_EVENT, SseEvent
from aiapi_edge.upstream import Upstream, UpstreamAnswer

log = logging.getLogger("aiapi.edge.messages")


def with_request_id(status: int, body: bytes, request_id: str) -> bytes:
    """An upstream error body with the edge's request id (a non-JSON body gets the real shape)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        parsed["request_id"] = request_id
        return orjson.dumps(parsed)
    type_ = WIRE[problem_for_status(status)].anthropic
    return anthropic_error_body(type_, f"The upstream API returned status {status}.", request_id)


def _answer_headers(answer: UpstreamAnswer, request_id: str) -> Headers:
    return client_response_headers(answer.headers, request_id.encode())


class _PassthroughStream:
    """The stream goes to the client as the upstream sent it; its events are only metered."""

    __slots__ = ("_meter", "_request_id")
    events = METERED_EVENTS  # the client gets the bytes; only the usage events are read

    def __init__(self, meter: UsageMeter, request_id: str) -> None:
        self._meter = meter
        self._request_id = request_id

    def headers(self, answer: UpstreamAnswer) -> Headers:
        headers = _answer_headers(answer, self._request_id)
        if not any(name == b"content-type" for name, _ in headers):
            headers.append((b"content-type", EVENT_STREAM))
        return headers

    def feed(self, chunk: bytes, events: list[SseEvent]) -> bytes:
        for name, data in events:
            self._meter.event(name, data)
        return chunk

    def end(self) -> bytes:
        return b""

    def ping(self, at_boundary: bool) -> bytes:
        return PING_EVENT if at_boundary else b""  # never inside an event the upstream began

    def failure(self, error: GatewayError, at_boundary: bool) -> bytes:
        separator = b"" if at_boundary else b"\n\n"
        return separator + sse_error_event(error.type, error.message)


@dataclass(slots=True)
class _Passthrough:
    """One Messages request, as the skeleton (:class:`.inference.Inference`) runs it."""

    requested_model: str
    model: ModelEntry
    payload: bytes
    max_tokens: int
    stream: bool
    estimate_body: Mapping[str, Any] | None
    conversation: str

    def answer(self, exchange: Exchange, answer: UpstreamAnswer, data: bytes) -> Ending:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            message = {}
        if isinstance(message, dict):
            exchange.meter.message(message)
        return Ending(data, 200, _answer_headers(answer, exchange.request_id))

    def error(self, exchange: Exchange, answer: UpstreamAnswer, data: bytes) -> Ending:
        body = with_request_id(answer.status, data, exchange.request_id)
        return Ending(body, answer.status, _answer_headers(answer, exchange.request_id))

    def stream_form(self, exchange: Exchange) -> _PassthroughStream:
        return _PassthroughStream(exchange.meter, exchange.request_id)


class MessagesRoute:
    route: Route = "anthropic"

    def __init__(
        self,
        gateway: Gateway,
        upstream: Upstream,
        inference: Inference,
        *,
        count_rate: PerKeyRate | None = None,
    ) -> None:
        self._gw = gateway
        self._upstream = upstream
        self._inference = inference
        self._count_rate = count_rate or PerKeyRate(600)

    async def count_tokens(
        self, scope: Scope, send: Send, raw: bytes, request_id: str, caller: KeyRecord
    ) -> None:
        """``caller`` was authenticated from the head before its body was read."""
        wait = self._count_rate.take(caller.key_id)
        if wait is not None:
            raise GatewayError(
                Problem.RATE_LIMITED,
                "count_tokens: this key's requests per minute are spent; retry later.",
                retry_after=wait,
            )
        model = parse_json_object(raw).get("model")
        if not isinstance(model, str) or not model:
            raise invalid_request("model: Field required", "model")
        # No max_tokens here: count_tokens takes none.
        payload = _with_model(raw, model, self._gw.resolve_model(model))
        # Free and not admitted: its upstream answers never change a key's health.
        answer = await self._upstream.send(
            "/v1/messages/count_tokens", payload, scope["headers"], verdicts=False
        )
        try:
            data = await answer.read()
        finally:
            answer.close()
        if answer.status != 200:
            data = with_request_id(answer.status, data, request_id)
        headers = client_response_headers(answer.headers, request_id.encode())
        await send_whole(send, answer.status, data, headers, content_type=None)

    async def messages(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw: bytes,
        request_id: str,
        caller: KeyRecord,
    ) -> None:
        await self._inference.serve(self, scope, receive, send, raw, request_id, caller)

    def prepare(self, scope: Scope, raw: bytes, caller: KeyRecord, request_id: str) -> _Passthrough:
        # Parsed once: the priced options, the conversation's metadata and the media estimate
        # read the same object (a large body, Claude Code's, was parsed three or four times). An
        # aliased model's replacement in ``payload`` changes nothing they read.
        body = read_messages_body(raw)
        self._gw.check_priced(scope, body.raw, parsed=body.parsed)
        model = self._gw.resolve_model(body.model)
        payload = _with_model(body.raw, body.model, model)
        conversation = conversation_of(
            scope["headers"], metadata_of(payload, body.parsed), caller.account_id, caller.key_id
        )
        return _Passthrough(
            body.model,
            model,
            payload,
            body.max_tokens,
            body.stream,
            media_body(payload, body.parsed),
            conversation,
        )


def _with_model(raw: bytes, requested: str, model: ModelEntry) -> bytes:
    """The bytes with an aliased model replaced by the sold one (unchanged otherwise)."""
    if model.id == requested:
        return raw
    return replace_top_level_string(raw, "model", model.id)
