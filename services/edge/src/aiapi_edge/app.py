"""The ASGI application: a dispatch by method and path, and the one place errors are rendered.

Plain ASGI rather than a framework router: the edge sits on every request's latency, and one dict
lookup is all the routing it needs. Routes are served at the root and under ``/api/proxy``; the
OpenAI routes also without ``/v1``. The query string (``?beta=true``) is ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.errors import Problem
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.http_guard import JOIN_HEAD

from aiapi_edge.asgi import (
    WHOLE,
    BodyReader,
    ClientGone,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    header,
    send_whole,
)
from aiapi_edge.catalogue_routes import PageError
from aiapi_edge.cors import CorsPolicy
from aiapi_edge.errors import (
    GatewayError,
    anthropic_error_body,
    invalid_request,
    not_found,
    openai_error_body_for,
)
from aiapi_edge.gateway import new_request_id
from aiapi_edge.openai_route import openai_headers
from aiapi_edge.service import EdgeService
from aiapi_edge.settings import EdgeSettings
from aiapi_edge.usage_route import request_record

log = logging.getLogger("aiapi.edge")

PREFIX = "/api/proxy"
# How long a request waits for a body read slot before it gets 503 (docs/edge.md).
BODY_SLOT_WAIT_S = 1.0
OPENAI_PATHS = ("/chat/completions", "/responses")
BATCHES = "/v1/messages/batches"
Handler = Callable[["Call"], Awaitable[None]]


def _openai_client(scope: Scope, path: str) -> bool:
    """Whether errors go out in OpenAI form: the OpenAI routes, and the models routes asked
    without ``anthropic-version`` (every Anthropic SDK sends it; no OpenAI client does)."""
    if path.endswith(OPENAI_PATHS):
        return True
    if path == "/models" or path.startswith("/models/"):
        return True
    if path == "/v1/models" or path.startswith("/v1/models/"):
        return header(scope, b"anthropic-version") is None
    return False


class Call:
    """One HTTP exchange: scope, channels, request id, and whether the response has started."""

    __slots__ = ("_send", "cors", "openai", "receive", "request_id", "scope", "started", "status")

    def __init__(self, scope: Scope, receive: Receive, send: Send, openai: bool) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self.request_id = new_request_id()
        self.openai = openai
        self.started = False
        self.status = 0
        self.cors: Headers = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            if self.cors:
                message["headers"] = [*message["headers"], *self.cors]
            if WHOLE in message:  # head and body in one write (aiapi_shared.http_guard)
                join = self.scope.get(JOIN_HEAD)
                if join is not None:
                    join()
        await self._send(message)

    def id_headers(self) -> Headers:
        if self.openai:
            return openai_headers(self.request_id)
        return [(b"request-id", self.request_id.encode())]

    async def json(self, status: int, body: bytes) -> None:
        await send_whole(self.send, status, body, self.id_headers())


class EdgeApp:
    def __init__(self, settings: EdgeSettings, catalogue: Catalogue | None = None) -> None:
        self.settings = settings
        self.service = EdgeService(settings, catalogue)
        self.bodies = BodyReader(
            settings.edge_max_body_bytes,
            timeout_s=settings.edge_body_timeout_s,
            slots=settings.edge_body_reads,
            slot_wait_s=BODY_SLOT_WAIT_S,
        )
        self._cors = CorsPolicy.from_setting(settings.cors_origins)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/chat/completions"): self._chat,
            ("POST", "/v1/responses"): self._responses,
            ("POST", "/responses"): self._responses,
            ("GET", "/v1/models"): self._models,
            ("POST", BATCHES): self._batch_create,
            ("GET", BATCHES): self._batch_list,
            ("GET", "/models"): self._models,  # OpenAI clients given a base without /v1
        }
        self._paths = frozenset(path for _, path in self._routes)
        self._metered: dict[Handler | None, str] = {
            self._messages: "anthropic",
            self._chat: "openai",
            self._responses: "responses",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # No lifespan: the runner (aiapi_shared.runner) starts and stops the service.
        if scope["type"] == "http":
            await self._http(scope, receive, send)

    def _customer(self, path: str) -> bool:
        """A customer route's path (the ones browsers may call; not health or metrics)."""
        return path in self._paths or path.startswith(
            ("/v1/models/", "/models/", "/v1/usage/requests/", BATCHES + "/")
        )

    def _route(self, method: str, path: str) -> Handler | None:
        handler = self._routes.get((method, path))
        if handler is None and path.startswith(BATCHES + "/"):
            return self._batch_one  # it answers 404 for a method a batch path does not take
        if handler is not None or method != "GET":
            return handler
        if path.startswith(("/v1/models/", "/models/")):
            return self._model
        if path.startswith("/v1/usage/requests/"):
            return self._usage_record
        return None  # health and metrics are on the internal listener only

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith(PREFIX):
            path = path[len(PREFIX) :] or "/"
        call = Call(scope, receive, send, openai=_openai_client(scope, path))
        if self._customer(path):
            origin = header(scope, b"origin")
            if scope["method"] == "OPTIONS":
                requested = header(scope, b"access-control-request-headers")
                cors = self._cors.preflight_headers(origin, requested)
                await send_whole(call.send, 204, b"", cors, content_type=None)
                return
            call.cors = self._cors.answer_headers(origin)
        handler = self._route(scope["method"], path)
        started = time.perf_counter()
        try:
            if handler is None:
                raise not_found(f"Not found: {scope['method']} {path}")
            await handler(call)
        except GatewayError as error:
            await self._gateway_error(call, error)
        except ClientGone:
            return
        except Exception:
            log.exception("request failed", extra={"request_id": call.request_id, "path": path})
            if not call.started:
                await self._gateway_error(
                    call, GatewayError(Problem.INTERNAL, "The gateway failed.")
                )
        route = self._metered.get(handler)
        if route is not None:
            self.service.metrics.observe(route, call.status, time.perf_counter() - started)

    async def _gateway_error(self, call: Call, error: GatewayError) -> None:
        if call.started:
            return
        headers = call.id_headers()
        if error.retry_after is not None:
            headers.append((b"retry-after", str(error.retry_after).encode()))
        if error.close:
            headers.append((b"connection", b"close"))
        if call.openai:
            body = openai_error_body_for(error)
        else:
            body = anthropic_error_body(error.type, error.message, call.request_id)
        await send_whole(call.send, error.status, body, headers)

    # The inference routes check the key (and the anthropic-beta policy) from the head before
    # reading a byte of the body: an unknown key costs the edge no memory, whatever the client
    # declares or sends.

    def _caller(self, call: Call) -> KeyRecord:
        caller = self.service.gateway.authenticate(call.scope)
        self.service.gateway.check_betas(call.scope)
        return caller

    async def _messages(self, call: Call) -> None:
        assert self.service.messages is not None
        caller = self._caller(call)
        body = await self.bodies.read(call.scope, call.receive)
        await self.service.messages.messages(
            call.scope, call.receive, call.send, body, call.request_id, caller
        )

    async def _count_tokens(self, call: Call) -> None:
        assert self.service.messages is not None
        caller = self._caller(call)
        body = await self.bodies.read(call.scope, call.receive)
        await self.service.messages.count_tokens(
            call.scope, call.send, body, call.request_id, caller
        )

    async def _chat(self, call: Call) -> None:
        assert self.service.chat is not None
        caller = self._caller(call)
        body = await self.bodies.read(call.scope, call.receive)
        await self.service.chat.handle(
            call.scope, call.receive, call.send, body, call.request_id, caller
        )

    async def _responses(self, call: Call) -> None:
        assert self.service.responses is not None
        caller = self._caller(call)
        body = await self.bodies.read(call.scope, call.receive)
        await self.service.responses.handle(
            call.scope, call.receive, call.send, body, call.request_id, caller
        )

    async def _batch_create(self, call: Call) -> None:
        assert self.service.batches is not None
        caller = self._caller(call)
        body = await self.bodies.read(call.scope, call.receive)
        await self.service.batches.create(call.scope, call.send, body, call.request_id, caller)

    async def _batch_list(self, call: Call) -> None:
        assert self.service.batches is not None
        caller = self.service.gateway.authenticate(call.scope)
        await self.service.batches.page(call.scope, call.send, call.request_id, caller)

    async def _batch_one(self, call: Call) -> None:
        assert self.service.batches is not None
        caller = self.service.gateway.authenticate(call.scope)
        path: str = call.scope["path"]
        rest = path[path.index(BATCHES) + len(BATCHES) + 1 :]
        await self.service.batches.one(call.scope, call.send, call.request_id, caller, rest)

    async def _models(self, call: Call) -> None:
        self.service.gateway.authenticate(call.scope)
        anthropic_client = any(name == b"anthropic-version" for name, _ in call.scope["headers"])
        try:
            body = self.service.models.page(
                call.scope["query_string"], anthropic_client=anthropic_client
            )
        except PageError as error:
            raise invalid_request(str(error), param=error.param) from None
        await call.json(200, body)

    async def _model(self, call: Call) -> None:
        self.service.gateway.authenticate(call.scope)
        model_id = call.scope["path"].rsplit("/", 1)[-1]
        body = self.service.models.one(model_id)
        if body is None and call.openai:
            message = f"The model '{model_id}' does not exist."
            raise GatewayError(Problem.NOT_FOUND, message, param="model")
        if body is None:
            raise not_found(f"model: {model_id}")
        await call.json(200, body)

    async def _usage_record(self, call: Call) -> None:
        caller = self.service.gateway.authenticate(call.scope)
        request_id = call.scope["path"].rsplit("/", 1)[-1]
        body = await request_record(
            self.service.bus,
            caller.account_id,
            request_id,
            self.settings.edge_admission_timeout_s * 4,
        )
        await call.json(200, body)


def create_app(settings: EdgeSettings | None = None, catalogue: Catalogue | None = None) -> EdgeApp:
    return EdgeApp(settings or EdgeSettings(), catalogue)
