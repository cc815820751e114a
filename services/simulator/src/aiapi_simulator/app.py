"""The HTTP shell: a small ASGI app that routes, authenticates, and hands bodies to the pure core.

It is plain ASGI rather than a framework router because it sits on every benchmark's baseline:
one dict lookup per request, precomputed header bytes, orjson, no per-request logging.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from aiapi_simulator import controls
from aiapi_simulator.batches import BatchBook, errored
from aiapi_simulator.cache import NO_CACHE, CacheUsage
from aiapi_simulator.config import SimulatorConfig
from aiapi_simulator.directives import DirectiveError, parse_directives
from aiapi_simulator.errors import ApiError, fault_error, invalid_request, unknown_betas
from aiapi_simulator.faults import STATUS_KINDS, Fault
from aiapi_simulator.playback import play_message, play_stream
from aiapi_simulator.responder import Reply, build_reply, prompt_text
from aiapi_simulator.sse import message_json, stream_script, usage_json
from aiapi_simulator.state import RecordedRequest, SimulatorState
from aiapi_simulator.tokens import count_prompt
from aiapi_simulator.validation import validate_messages
from aiapi_simulator.wire import EVENT_STREAM, JSON, IdMaker, Wire

Handler = Callable[["Request"], Awaitable[None]]

# What a beta's name looks like (`interleaved-thinking-2025-05-14`, `claude-code-20250219`).
_BETA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_BATCH_PREFIX = "/v1/messages/batches/"
_JSONL = b"application/x-jsonl"


class Request:
    """One HTTP exchange as the handlers see it."""

    __slots__ = ("body", "id", "receive", "record", "scope", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send, body: bytes, id_: str) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.body = body
        self.id = id_
        self.record: RecordedRequest | None = None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return bytes(value)
        return None

    def api_key(self) -> str | None:
        """The upstream key: `x-api-key`, else a `Authorization: Bearer` token."""
        key = self.header(b"x-api-key")
        if key:
            return key.decode("latin-1")
        authorization = self.header(b"authorization")
        if authorization and authorization[:7].lower() == b"bearer ":
            token = authorization[7:].strip()
            return token.decode("latin-1") if token else None
        return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Simulator:
    """The ASGI application. Holds its own state; nothing is shared between instances."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.state = SimulatorState(config)
        self.wire = Wire(config)
        self.ids = IdMaker()
        self._models = {model.id: model for model in config.models}
        self.batches = BatchBook(config.batch_processing_s)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("GET", "/v1/models"): self._list_models,
            ("POST", "/v1/messages/batches"): self._create_batch,
            ("GET", "/v1/messages/batches"): self._list_batches,
            ("GET", "/healthz"): self._healthz,
            **controls.routes(self),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if body is None:
            return
        request = Request(scope, receive, send, body, self.ids.next("req"))
        method, path = scope["method"], scope["path"]
        handler = self._routes.get((method, path))
        if path.startswith("/v1/"):
            request.record = self._record(scope, body, method, path, request.id)
            if handler is None and method == "GET" and path.startswith("/v1/models/"):
                handler = self._get_model
            elif handler is None and path.startswith(_BATCH_PREFIX):
                handler = self._batch
        try:
            if handler is None:
                raise ApiError(404, "not_found_error", f"Not found: {method} {path}")
            await handler(request)
        except ApiError as error:
            if path.startswith("/v1/"):
                self.state.stats.by_status[error.status] += 1
            await self.wire.send_error(send, error, request.id)

    def _record(
        self, scope: Scope, body: bytes, method: str, path: str, id_: str
    ) -> RecordedRequest:
        headers = [(bytes(k), bytes(v)) for k, v in scope["headers"]]
        record = RecordedRequest(method, path, scope.get("query_string", b""), headers, body, id_)
        self.state.recorded.append(record)
        stats = self.state.stats
        stats.requests += 1
        stats.by_route[f"{method} {path}"] += 1
        return record

    def _authenticate(self, request: Request) -> str:
        key = request.api_key()
        if key is None:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        if self.config.api_keys and key not in self.config.api_keys:
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        if self.config.require_anthropic_version and request.header(b"anthropic-version") is None:
            raise invalid_request("anthropic-version: header is required")
        _check_betas(request)
        return key

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise invalid_request(
                "There was an error parsing the body of your request: it is not valid JSON"
            ) from None

    async def _ok(self, request: Request, payload: Any) -> None:
        if request.scope["path"].startswith("/v1/"):
            self.state.stats.by_status[200] += 1
        await self.wire.send_body(request.send, 200, request.id, orjson.dumps(payload))

    async def _healthz(self, request: Request) -> None:
        await self.wire.send_body(request.send, 200, request.id, b'{"status":"ok"}')

    async def _messages(self, request: Request) -> None:
        api_key = self._authenticate(request)
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        raw = self._json(request)
        fault = self._strike(self.state.faults.take(api_key))
        body = validate_messages(raw, needs_max_tokens=True, betas=_betas(request))
        if self.config.strict_models and body["model"] not in self._models:
            raise ApiError(404, "not_found_error", f"model: {body['model']}")
        try:
            directives = parse_directives(prompt_text(body))
        except DirectiveError as exc:
            raise invalid_request(f"simulator directive: {exc}") from None
        if fault is None:
            fault = self._strike(directives.fault)
        stream = body.get("stream") is True
        if fault is not None and fault.kind == "stream_error" and not stream:
            raise fault_error(fault)
        prompt = count_prompt(body)
        cache = self.state.cache.apply(api_key, prompt)
        reply = build_reply(
            body,
            directives,
            message_id=self.ids.next("msg"),
            input_tokens=prompt.total - cache.read - cache.creation,
            cache=cache,
        )
        self._count_usage(reply.usage.input_tokens, reply.usage.output_tokens, cache)
        if stream:
            await self._stream(request, reply, fault)
        else:
            payload = message_json(reply)
            headers = self.wire.headers(request.id, JSON, len(payload))
            tps = self.config.tokens_per_second
            delay = reply.usage.output_tokens / tps if tps > 0 else 0.0
            delivery = await play_message(
                request.send, request.receive, headers, payload, fault, delay
            )
            if request.record is not None:
                whole = delivery.sent == 1
                request.record.serve(
                    stream=False,
                    usage=usage_json(reply.usage, reply.usage.output_tokens) if whole else None,
                    complete=whole,
                    client_gone=delivery.client_gone,
                )

    def _strike(self, fault: Fault | None) -> Fault | None:
        """Count a fault that applies; a status fault is answered right away."""
        if fault is not None:
            self.state.stats.faults_injected += 1
            if fault.kind in STATUS_KINDS:
                raise fault_error(fault)
        return fault

    async def _stream(self, request: Request, reply: Reply, fault: Fault | None) -> None:
        headers = self.wire.headers(request.id, EVENT_STREAM)
        headers.append((b"cache-control", b"no-cache"))
        stats = self.state.stats
        stats.streams += 1
        stats.active_streams += 1
        script = stream_script(reply)
        try:
            delivery = await play_stream(
                request.send,
                request.receive,
                headers,
                script,
                fault,
                self.config.tokens_per_second,
                self.config.ping_interval,
            )
        finally:
            stats.active_streams -= 1
        if request.record is not None:
            request.record.serve(
                stream=True,
                usage=_usage_carried(reply, delivery.sent, len(script.frames)),
                complete=delivery.sent == len(script.frames),
                client_gone=delivery.client_gone,
            )

    def _count_usage(self, input_tokens: int, output_tokens: int, cache: CacheUsage) -> None:
        stats = self.state.stats
        stats.by_status[200] += 1
        stats.input_tokens += input_tokens
        stats.output_tokens += output_tokens
        stats.cache_read_input_tokens += cache.read
        stats.cache_creation_input_tokens += cache.creation

    async def _count_tokens(self, request: Request) -> None:
        api_key = self._authenticate(request)
        self._strike(self.state.faults.take(api_key, "count_tokens"))
        body = validate_messages(self._json(request), needs_max_tokens=False, betas=_betas(request))
        await self._ok(request, {"input_tokens": count_prompt(body).total})

    def _model_json(self, model_id: str) -> dict[str, str]:
        model = self._models[model_id]
        return {
            "type": "model",
            "id": model.id,
            "display_name": model.display_name,
            "created_at": model.created_at,
        }

    async def _list_models(self, request: Request) -> None:
        self._authenticate(request)
        ids = [model.id for model in self.config.models]
        query = controls.query_params(request.scope)
        if "after_id" in query and query["after_id"] in ids:
            ids = ids[ids.index(query["after_id"]) + 1 :]
        if "before_id" in query and query["before_id"] in ids:
            ids = ids[: ids.index(query["before_id"])]
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 20
        page, has_more = ids[: max(1, limit)], len(ids) > max(1, limit)
        await self._ok(
            request,
            {
                "data": [self._model_json(model_id) for model_id in page],
                "has_more": has_more,
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            },
        )

    async def _get_model(self, request: Request) -> None:
        self._authenticate(request)
        model_id = request.scope["path"][len("/v1/models/") :]
        if model_id not in self._models:
            raise ApiError(404, "not_found_error", f"model: {model_id}")
        await self._ok(request, self._model_json(model_id))

    # The Message Batches API (:mod:`.batches`).

    def _batch_answer(self, params: dict[str, Any], betas: frozenset[str]) -> dict[str, Any]:
        """One batch request's result, as the Messages API would have answered it with the
        batch's ``anthropic-beta`` values (no prompt cache, no faults), with the batch's service
        tier in its usage."""
        try:
            body = validate_messages(params, needs_max_tokens=True, betas=betas)
            if self.config.strict_models and body["model"] not in self._models:
                raise ApiError(404, "not_found_error", f"model: {body['model']}")
            directives = parse_directives(prompt_text(body))
        except ApiError as error:
            return errored(error)
        except DirectiveError as exc:
            return errored(invalid_request(f"simulator directive: {exc}"))
        prompt = count_prompt(body)
        reply = build_reply(
            body, directives, message_id=self.ids.next("msg"), input_tokens=prompt.total,
            cache=NO_CACHE,
        )  # fmt: skip
        self._count_usage(reply.usage.input_tokens, reply.usage.output_tokens, NO_CACHE)
        message = orjson.loads(message_json(reply))
        message["usage"]["service_tier"] = "batch"
        return {"type": "succeeded", "message": message}

    def _results_base(self, request: Request) -> str:
        host = request.header(b"host")
        return "http://" + (
            host.decode("latin-1") if host else f"{self.config.host}:{self.config.port}"
        )

    async def _create_batch(self, request: Request) -> None:
        owner = self._authenticate(request)
        betas = _betas(request)
        batch = self.batches.create(
            owner,
            self._json(request),
            self.ids.next("msgbatch"),
            lambda params: self._batch_answer(params, betas),
        )
        await self._ok(request, batch.to_json(self.batches.now(), self._results_base(request)))

    async def _list_batches(self, request: Request) -> None:
        owner = self._authenticate(request)
        query = controls.query_params(request.scope)
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 20
        if not 1 <= limit <= 1000:
            raise invalid_request("limit: Input should be between 1 and 1000")
        page, has_more = self.batches.page(
            owner, limit, query.get("after_id"), query.get("before_id")
        )
        now, base = self.batches.now(), self._results_base(request)
        await self._ok(
            request,
            {
                "data": [batch.to_json(now, base) for batch in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            },
        )

    async def _batch(self, request: Request) -> None:
        """``/v1/messages/batches/{id}`` (GET, DELETE), ``…/cancel`` (POST), ``…/results``."""
        owner = self._authenticate(request)
        method = request.scope["method"]
        batch_id, _, action = request.scope["path"][len(_BATCH_PREFIX) :].partition("/")
        book = self.batches
        if action == "" and method == "GET":
            batch = book.get(owner, batch_id)
        elif action == "" and method == "DELETE":
            book.delete(owner, batch_id)
            await self._ok(request, {"id": batch_id, "type": "message_batch_deleted"})
            return
        elif action == "cancel" and method == "POST":
            batch = book.cancel(owner, batch_id)
        elif action == "results" and method == "GET":
            body = book.results(owner, batch_id)
            self.state.stats.by_status[200] += 1
            disposition = f"attachment; filename={batch_id}_results.jsonl".encode()
            await self.wire.send_body(
                request.send, 200, request.id, body, _JSONL,
                [(b"content-disposition", disposition)],
            )  # fmt: skip
            return
        else:
            raise ApiError(404, "not_found_error", f"Not found: {method} {request.scope['path']}")
        await self._ok(request, batch.to_json(book.now(), self._results_base(request)))


def _usage_carried(reply: Reply, sent: int, frames: int) -> dict[str, Any] | None:
    """The last usage a stream cut after ``sent`` of its ``frames`` carried: ``message_delta``'s
    (the one before last), else ``message_start``'s (the first), else none."""
    if sent >= frames - 1:
        return usage_json(reply.usage, reply.usage.output_tokens)
    if sent >= 1:
        return usage_json(reply.usage, min(1, reply.usage.output_tokens), final=False)
    return None


def _betas(request: Request) -> frozenset[str]:
    """The betas a request asked for (every `anthropic-beta` header, comma-separated)."""
    names: set[str] = set()
    for name, raw in request.scope["headers"]:
        if name == b"anthropic-beta":
            names.update(v.strip() for v in bytes(raw).decode("latin-1").split(","))
    names.discard("")
    return frozenset(names)


def _check_betas(request: Request) -> None:
    """Refuse `anthropic-beta` values that cannot be a beta's name, echoing them as the real API
    echoes any value it does not know (the simulator cannot know every real beta, so it accepts
    every name-shaped one)."""
    unknown = sorted(v for v in _betas(request) if not _BETA_NAME.fullmatch(v))
    if unknown:
        raise unknown_betas(unknown)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(config: SimulatorConfig) -> Simulator:
    """The simulator as an ASGI application (state lives on the returned object)."""
    return Simulator(config)
