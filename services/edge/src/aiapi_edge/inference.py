"""The one request skeleton every inference route runs: admit, send, answer or stream, record.

A route (:mod:`.anthropic_route`, :mod:`.openai_route`) supplies only what differs, as a
:class:`RouteForm`: how its body is read and translated (:meth:`RouteForm.prepare`, which also
resolves the model, once per request) and, for that request, how the whole answer, an upstream
error and the stream are rendered (:class:`Prepared`, :class:`StreamForm`). The key was checked
from the head before the body was read (:mod:`.app`); everything after is here, the same for
every route, so a request is admitted, metered and billed the same way whichever route it took.

The usage event of an admitted request is spooled exactly once, in one place (the ``finally`` of
:meth:`Inference.serve`), on every path: an answer, an upstream error, no upstream able to
answer, a client gone mid-stream, a hold extension refused, an exception. It is durable before
the client hears the end of its answer: the last bytes (the JSON answer, the error, the stream's
final event and what follows it) are held back and sent once it is spooled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiapi_shared.catalogue import ModelEntry
from aiapi_shared.errors import Problem
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.events.usage_v1 import Route

from aiapi_edge.asgi import Headers, Receive, Scope, Send, StreamBody, send_whole
from aiapi_edge.budget import cost_of
from aiapi_edge.errors import GatewayError, upstream_failed
from aiapi_edge.extension import GUARDED_EVENTS, INSUFFICIENT_BALANCE_MESSAGE, HoldGuard
from aiapi_edge.gateway import Exchange, Gateway
from aiapi_edge.http_client import HttpClientError
from aiapi_edge.quote import cost_headers
from aiapi_edge.sse import SseEvent, SseReader
from aiapi_edge.streaming import PumpResult, pump
from aiapi_edge.upstream import Upstream, UpstreamAnswer

StreamEnd = Literal["complete", "cut", "client_left", "upstream_error", "truncated"]

_CUT = GatewayError(Problem.INSUFFICIENT_BALANCE, INSUFFICIENT_BALANCE_MESSAGE)
_ENDED_EARLY = upstream_failed("The upstream stream ended early.")
_CONNECTION_FAILED = upstream_failed("The upstream connection failed.")


@dataclass(slots=True)
class Ending:
    """The last of an answer, sent once its usage is recorded: a whole response, or (``headers``
    None) the last bytes of a response already started."""

    body: bytes
    status: int = 200
    headers: Headers | None = None
    content_type: bytes | None = None  # None: ``headers`` carry it

    async def deliver(self, send: Send) -> None:
        if self.headers is None:
            await send({"type": "http.response.body", "body": self.body, "more_body": False})
        else:
            await send_whole(send, self.status, self.body, self.headers, self.content_type)


class StreamForm(Protocol):
    """How one route renders one stream: upstream SSE events in, the client's bytes out."""

    @property
    def events(self) -> frozenset[bytes] | None:
        """The event names :meth:`feed` reads (None: every event); the rest are not parsed."""

    def headers(self, answer: UpstreamAnswer) -> Headers:
        """The response headers (status 200)."""

    def feed(self, chunk: bytes, events: list[SseEvent]) -> bytes:
        """Meter the events a chunk completed (into the exchange's meter) and return what the
        client gets for the chunk (may be empty)."""

    def end(self) -> bytes:
        """What follows the last event of a complete stream."""

    def ping(self, at_boundary: bool) -> bytes:
        """A keep-alive while the upstream is silent (empty: none now)."""

    def failure(self, error: GatewayError, at_boundary: bool) -> bytes:
        """The error that ends a stream cut short (after which the stream closes)."""


class Prepared(Protocol):
    """One request, read and translated, and how its answer is rendered."""

    @property
    def requested_model(self) -> str: ...

    @property
    def model(self) -> ModelEntry:
        """The model sold for ``requested_model`` (resolved once, by :meth:`RouteForm.prepare`)."""

    @property
    def payload(self) -> bytes:
        """The Messages request body sent upstream."""

    @property
    def max_tokens(self) -> int: ...

    @property
    def stream(self) -> bool: ...

    @property
    def estimate_body(self) -> Mapping[str, Any] | None:
        """The parsed body when the input is best estimated per content block (:mod:`.estimate`)."""

    @property
    def conversation(self) -> str:
        """What the upstream key is chosen by (:mod:`.affinity`)."""

    def answer(self, exchange: Exchange, answer: UpstreamAnswer, data: bytes) -> Ending:
        """A whole upstream message (status 200): meter it, render it; may raise
        :class:`GatewayError` (an answer the route cannot use)."""

    def error(self, exchange: Exchange, answer: UpstreamAnswer, data: bytes) -> Ending:
        """An upstream error answer (its status kept), in the route's error shape."""

    def stream_form(self, exchange: Exchange) -> StreamForm: ...


class RouteForm(Protocol):
    """What an inference route supplies to the skeleton."""

    @property
    def route(self) -> Route:
        """The usage event's ``route``."""

    def prepare(self, scope: Scope, raw: bytes, caller: KeyRecord, request_id: str) -> Prepared:
        """Read and translate the body, resolving the model and refusing what the catalogue
        cannot price; raises :class:`GatewayError`."""


def stream_end(
    exchange: Exchange, *, client_left: bool, cut: bool, upstream_error: bool, complete: bool
) -> StreamEnd:
    """Record how a stream ended on the exchange (every route shares the rule); a cut and a
    truncation still owe the client an error, in the route's own format."""
    exchange.client_disconnected = client_left
    if cut:
        exchange.outcome = "client_disconnected" if client_left else "stream_error"
        return "cut"
    if client_left:
        exchange.outcome = "client_disconnected"
        return "client_left"
    if upstream_error or not complete:
        exchange.outcome = "stream_error"
        return "upstream_error" if upstream_error else "truncated"
    return "complete"


class Inference:
    """The skeleton; one per edge, shared by every inference route."""

    def __init__(
        self, gateway: Gateway, upstream: Upstream, *, ping_interval: float, drain_s: float
    ) -> None:
        self._gw = gateway
        self._upstream = upstream
        self._ping_interval = ping_interval
        self._drain_s = drain_s

    async def serve(
        self,
        form: RouteForm,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw: bytes,
        request_id: str,
        caller: KeyRecord,
    ) -> None:
        request = form.prepare(scope, raw, caller, request_id)
        exchange = await self._gw.admit(
            request_id=request_id,
            route=form.route,
            caller=caller,
            requested_model=request.requested_model,
            model=request.model,
            body_size=len(request.payload),
            max_tokens=request.max_tokens,
            body=request.estimate_body,
        )
        # Admitted: from here the usage event is owed, whatever happens.
        served: list[int] = []  # the pool slot of the key that answered, once one did
        try:
            ending = await self._exchange(exchange, request, scope, receive, send, served)
        except GatewayError as error:  # no upstream could answer, or its answer was unusable
            exchange.status_code, exchange.outcome = error.status, "upstream_error"
            self._count_served(exchange, served)
            raise
        except BaseException:
            exchange.status_code, exchange.outcome = 500, "gateway_error"
            self._count_served(exchange, served)
            raise
        finally:
            await self._gw.record(exchange)
        try:
            await ending.deliver(send)
        finally:
            # The pool's count (the operator's view) waits until the client has its answer: it
            # is not on the way to the client's last byte.
            self._count_served(exchange, served)

    async def _exchange(
        self,
        exchange: Exchange,
        request: Prepared,
        scope: Scope,
        receive: Receive,
        send: Send,
        served: list[int],
    ) -> Ending:
        answer = await self._upstream.send(
            "/v1/messages",
            request.payload,
            scope["headers"],
            conversation=request.conversation,
            model=exchange.model.id,
        )
        try:
            if answer.status != 200:
                exchange.status_code, exchange.outcome = answer.status, "upstream_error"
                return request.error(exchange, answer, await answer.read())
            if request.stream:
                form = request.stream_form(exchange)
                return await self._stream(exchange, form, answer, scope, receive, send)
            try:
                data = await answer.read()
            except HttpClientError as exc:
                raise _CONNECTION_FAILED from exc
            ending = request.answer(exchange, answer, data)
            assert ending.headers is not None
            snapshot = self._gw.balances.get(exchange.caller.account_id)
            ending.headers.extend(cost_headers(self._gw.catalogue, exchange, snapshot))
            return ending
        finally:
            answer.close()
            served.append(answer.key_index)

    def _count_served(self, exchange: Exchange, served: list[int]) -> None:
        """What the key served, for the operator's view of the pool: the usage as metered and
        its cost at list price (the upstream's price, no plan discount). Once per answer."""
        if not served:
            return
        slot = served.pop()
        meters = exchange.meter.meters()
        price = exchange.price
        catalogue = self._gw.catalogue
        cost = 0 if price is None else cost_of(meters, price, 0, catalogue.cache_multipliers_bps)
        self._upstream.pool.served(slot, meters, cost)

    async def _stream(
        self,
        exchange: Exchange,
        form: StreamForm,
        answer: UpstreamAnswer,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> Ending:
        meter = exchange.meter
        guard = self._gw.hold_guard(exchange)
        keep = form.events
        reader = SseReader(keep if keep is None or guard is None else keep | GUARDED_EVENTS)
        await send({"type": "http.response.start", "status": 200, "headers": form.headers(answer)})
        body = StreamBody(scope, send)
        # From the chunk that completes the stream on, the bytes wait for the usage event.
        held: list[bytes] = []

        def on_chunk(chunk: bytes, client_present: bool) -> bool:
            if not client_present:
                exchange.client_disconnected, exchange.outcome = True, "client_disconnected"
            events = reader.feed(chunk)
            if guard is not None:
                for name, data in events:
                    guard.observe(name, data)
            was_complete = meter.complete
            out = form.feed(chunk, events)
            if meter.complete:
                held.append(out if was_complete else out + form.end())
            elif client_present and out:
                body.write(out)
            return guard is not None and not meter.complete and guard.must_end()

        async def on_idle() -> None:
            ping = b"" if meter.complete else form.ping(reader.at_boundary)
            if ping:
                await send({"type": "http.response.body", "body": ping, "more_body": True})

        end, result = await self._pump(exchange, answer, receive, body, guard, on_chunk, on_idle)
        if end == "cut":
            held.append(form.failure(_CUT, reader.at_boundary))
        elif end == "truncated":
            error = _ENDED_EARLY if result == "ended" else _CONNECTION_FAILED
            held.append(form.failure(error, reader.at_boundary))
        return Ending(b"".join(held))

    async def _pump(
        self,
        exchange: Exchange,
        answer: UpstreamAnswer,
        receive: Receive,
        body: StreamBody,
        guard: HoldGuard | None,
        on_chunk: Callable[[bytes, bool], bool],
        on_idle: Callable[[], Awaitable[None]],
    ) -> tuple[StreamEnd, PumpResult]:
        """Read the upstream to its end (:func:`.streaming.pump`), then record how the stream
        ended; a cut stream's output is metered from the guard's estimate."""
        meter = exchange.meter
        try:
            result, client_left = await pump(
                answer,
                receive,
                body,
                on_chunk=on_chunk,
                on_idle=on_idle,
                is_complete=lambda: meter.complete or meter.error is not None,
                ping_interval=self._ping_interval,
                drain_s=self._drain_s,
            )
        finally:
            if guard is not None:
                guard.close()
        cut = result == "cut" and guard is not None
        end = stream_end(
            exchange,
            client_left=client_left,
            cut=cut,
            upstream_error=meter.error is not None,
            complete=meter.complete,
        )
        if cut and guard is not None:
            guard.meter_cut()
        return end, result
