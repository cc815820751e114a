"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the passthrough routes.

The client's bytes go upstream unchanged but for what :mod:`.body` changes; the answer comes back
unchanged but for its headers (:mod:`.headers`) and, on errors, the ``request_id`` in the body
(which must equal the edge's ``request-id`` header). The stream is read only to meter it.
"""

from __future__ import annotations

import logging

import orjson
from aiapi_shared.events.records_v1 import KeyRecord

from aiapi_edge.affinity import conversation_of, metadata_of
from aiapi_edge.asgi import EVENT_STREAM, Receive, Scope, Send, send_whole
from aiapi_edge.body import parse_json_object, read_messages_body, replace_top_level_string
from aiapi_edge.count_limit import PerKeyRate
from aiapi_edge.errors import GatewayError, anthropic_error_body, invalid_request, sse_error_event
from aiapi_edge.estimate import media_body
from aiapi_edge.extension import INSUFFICIENT_BALANCE_MESSAGE
from aiapi_edge.gateway import Exchange, Gateway
from aiapi_edge.headers import client_response_headers
from aiapi_edge.http_client import HttpClientError
from aiapi_edge.openai.errors import openai_error_type
from aiapi_edge.quote import cost_headers
from aiapi_edge.sse import PING_EVENT, SseReader
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
    type_ = openai_error_type(None, status)
    return anthropic_error_body(type_, f"The upstream API returned status {status}.", request_id)


class MessagesRoute:
    def __init__(
        self,
        gateway: Gateway,
        upstream: Upstream,
        *,
        ping_interval: float,
        drain_s: float,
        count_rate: PerKeyRate | None = None,
    ) -> None:
        self._gw = gateway
        self._upstream = upstream
        self._ping_interval = ping_interval
        self._drain_s = drain_s
        self._count_rate = count_rate or PerKeyRate(600)

    async def count_tokens(
        self, scope: Scope, send: Send, raw: bytes, request_id: str, caller: KeyRecord
    ) -> None:
        """``caller`` was authenticated from the head before its body was read."""
        wait = self._count_rate.take(caller.key_id)
        if wait is not None:
            raise GatewayError(
                429,
                "rate_limit_error",
                "count_tokens: this key's requests per minute are spent; retry later.",
                retry_after=wait,
            )
        model = parse_json_object(raw).get("model")
        if not isinstance(model, str) or not model:
            raise invalid_request("model: Field required", "model")
        payload = self._with_model(raw, model)  # no max_tokens here: count_tokens takes none
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

    def _with_model(self, raw: bytes, requested: str) -> bytes:
        """The bytes with an aliased model replaced by the sold one (unchanged otherwise)."""
        model = self._gw.resolve_model(requested)
        if model.id == requested:
            return raw
        return replace_top_level_string(raw, "model", model.id)

    async def messages(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw: bytes,
        request_id: str,
        caller: KeyRecord,
    ) -> None:
        body = read_messages_body(raw)
        self._gw.check_priced(scope, body.raw)
        payload = self._with_model(body.raw, body.model)
        exchange = await self._gw.admit(
            request_id=request_id,
            route="anthropic",
            caller=caller,
            requested_model=body.model,
            body_size=len(payload),
            max_tokens=body.max_tokens,
            body=media_body(payload),
        )
        try:
            answer = await self._upstream.send(
                "/v1/messages",
                payload,
                scope["headers"],
                conversation=conversation_of(
                    scope["headers"], metadata_of(payload), caller.account_id, caller.key_id
                ),
            )
        except GatewayError as error:
            exchange.status_code, exchange.outcome = error.status, "upstream_error"
            await self._gw.record(exchange)
            raise
        try:
            if answer.status != 200:
                await self._error(exchange, answer, send)
            elif body.stream:
                await self._stream(exchange, answer, receive, send)
            else:
                await self._json(exchange, answer, send)
        except GatewayError:
            raise
        except BaseException:
            exchange.outcome, exchange.status_code = "gateway_error", 500
            raise
        finally:
            answer.close()
            await self._gw.record(exchange)

    async def _error(self, exchange: Exchange, answer: UpstreamAnswer, send: Send) -> None:
        exchange.status_code, exchange.outcome = answer.status, "upstream_error"
        await self._gw.record(exchange)
        data = with_request_id(answer.status, await answer.read(), exchange.request_id)
        headers = client_response_headers(answer.headers, exchange.request_id.encode())
        await send_whole(send, answer.status, data, headers, content_type=None)

    async def _json(self, exchange: Exchange, answer: UpstreamAnswer, send: Send) -> None:
        try:
            data = await answer.read()
        except HttpClientError as exc:
            exchange.status_code, exchange.outcome = 502, "upstream_error"
            raise GatewayError(502, "api_error", "The upstream connection failed.") from exc
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            message = {}
        if isinstance(message, dict):
            exchange.meter.message(message)
        await self._gw.record(exchange)
        headers = client_response_headers(answer.headers, exchange.request_id.encode())
        headers += cost_headers(self._gw.catalogue, exchange)
        await send_whole(send, 200, data, headers, content_type=None)

    async def _stream(
        self, exchange: Exchange, answer: UpstreamAnswer, receive: Receive, send: Send
    ) -> None:
        reader = SseReader()
        meter = exchange.meter
        guard = self._gw.hold_guard(exchange)
        headers = client_response_headers(answer.headers, exchange.request_id.encode())
        if not any(name == b"content-type" for name, _ in headers):
            headers.append((b"content-type", EVENT_STREAM))
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def on_chunk(chunk: bytes, client_present: bool) -> bool:
            if not client_present:
                exchange.client_disconnected, exchange.outcome = True, "client_disconnected"
            for name, data in reader.feed(chunk):
                meter.event(name, data)
                if guard is not None:
                    guard.observe(name, data)
            if meter.complete:
                await self._gw.record(exchange)  # durable before the client sees the end
            if client_present:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            return guard is not None and not meter.complete and guard.must_end()

        async def on_idle() -> None:
            if reader.at_boundary:
                await send({"type": "http.response.body", "body": PING_EVENT, "more_body": True})

        end, result = await exchange.pump_stream(
            answer,
            receive,
            guard,
            on_chunk=on_chunk,
            on_idle=on_idle,
            is_complete=lambda: meter.complete,
            ping_interval=self._ping_interval,
            drain_s=self._drain_s,
        )
        tail = b""
        separator = b"" if reader.at_boundary else b"\n\n"
        if end == "cut":
            tail = separator + sse_error_event("insufficient_balance", INSUFFICIENT_BALANCE_MESSAGE)
        elif end == "truncated":
            message = (
                "The upstream stream ended early."
                if result == "ended"
                else "The upstream connection failed."
            )
            tail = separator + sse_error_event("api_error", message)
        await self._gw.record(exchange)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
