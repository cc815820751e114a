"""The one module that talks to NATS: connection, streams, KV, publishing, consuming, request/reply.

Every service goes through :class:`Bus`; nothing else imports ``nats``. Rules it enforces:

* The connection reconnects forever. If it closes for good anyway, ``closed`` is set and the
  service's main loop exits the process (a supervisor restarts it) rather than limp on.
* Declarations (streams, consumers, KV buckets) are idempotent: create, or update to the config.
* Every JetStream publish carries ``Nats-Msg-Id`` (the event id), so a retried publish inside the
  stream's duplicate window is stored once. The database key in the consumer is the guarantee
  beyond the window.
* A durable pull consumer acks only after its handler returned; :class:`RetryableError` naks with
  its delay; :class:`PoisonMessage` (undecodable data, see :func:`decode_event`) is copied to the
  dead-letter stream, then terminated; any other failure is redelivered with a growing delay and
  counted (:mod:`.redelivery`, :mod:`.bus_metrics`).
* Request/reply goes through :meth:`Bus.call`, whose failures are one family (:class:`BusError`):
  :class:`BusUnavailable` (no answer in time), :class:`NoResponders` (nobody listens: the request
  certainly reached no one), :class:`InvalidReply` (an answer that does not decode) and
  :class:`ErrorReply` (the peer refused, with the contract's :class:`ApiError`).

What other modules need of nats (the message type, the KV handle, its errors) is re-exported
here under names of our own, so that this module is the one place to adapt when nats-py changes;
``tests/test_layout.py`` fails when another module imports ``nats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import (
    APIError,
    BadRequestError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from aiapi_shared import redelivery
from aiapi_shared.billing_api import ApiError
from aiapi_shared.bus_metrics import ConsumerMetrics
from aiapi_shared.errors import PoisonMessage, RetryableError
from aiapi_shared.events.base import Event
from aiapi_shared.events.records_v1 import UPSTREAM_STATUS_BUCKET, UPSTREAM_STATUS_TTL_S
from aiapi_shared.jetstream_limits import JetStreamLimits, jetstream_limits
from aiapi_shared.lifecycle import StartupRefused, unless_stopped
from aiapi_shared.linger import AdaptiveLinger
from aiapi_shared.settings import BaseServiceSettings, NatsConnectOptions, nats_connect_options

__all__ = [
    "STREAMS",
    "Bus",
    "BusError",
    "BusTimeout",
    "BusUnavailable",
    "CredentialsRefused",
    "ErrorReply",
    "InvalidReply",
    "KeyChanged",
    "KeyNotFound",
    "KeyValue",
    "Msg",
    "NoKeys",
    "NoResponders",
    "StreamSpec",
    "decode_event",
]

log = logging.getLogger("aiapi.bus")
# A consumer's fetch is a long poll: the server holds it until messages come or it expires. An
# idle consumer sends one pull request per wait, each a wake-up of the client and of nats-server,
# so the wait grows while the consumer is idle, doubling from FETCH_WAIT_FIRST_S to FETCH_WAIT_S
# (1, 2, 4, 8, 16, 30 s): a pull request lost without a word (sent while JetStream was still
# starting, or on a connection that dropped again; a cluster's consumer leader moving) costs at
# most the wait it was sent with, and a fresh consumer starts short. Neither a stop nor a
# reconnect waits for a fetch: a stop cancels it; a reconnect (NATS restarted: the pull request
# is gone with it) cancels it, looks the consumer up again and starts over from the short wait.
# A fetch that has not returned FETCH_BOUND_S after its wait is stuck (see :meth:`Bus._pull`).
FETCH_WAIT_FIRST_S = 1.0
FETCH_WAIT_S = 30.0
FETCH_BOUND_S = 10.0
# A batch loop's linger aims at batches of about this many events (aiapi_shared.linger).
LINGER_TARGET = 32

E = TypeVar("E", bound=Event)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# nats-py's names for what other modules handle: a consumed message (``Msg``), a KV bucket
# (``KeyValue``), an absent or deleted key, a compare-and-set that lost (the key changed since
# the revision given), an empty bucket's key list, and a wait on a subscription that timed out.
KeyNotFound = KeyNotFoundError
KeyChanged = KeyWrongLastSequenceError
NoKeys = NoKeysError
BusTimeout = NatsTimeoutError


@dataclass(frozen=True)
class StreamSpec:
    # Replicas, byte and age limits come from the bus's JetStreamLimits (settings); a stream
    # whose retention is the product's own choice (the dead letters) names its age here.
    name: str
    subjects: tuple[str, ...]
    duplicate_window_s: float = 120.0
    max_age_s: float | None = None


# The streams of the product, by context. Each context owns its subjects.
STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("USAGE", ("usage.v1.>",)),
    StreamSpec("BILLING", ("billing.v1.>",)),
    StreamSpec("PAYMENTS", ("payments.v1.>",)),
    StreamSpec("ACCOUNTS", ("accounts.v1.>",)),
    StreamSpec(
        redelivery.DEADLETTER_STREAM,
        (f"{redelivery.DEADLETTER_PREFIX}>",),
        max_age_s=redelivery.DEADLETTER_MAX_AGE_S,
    ),
)
_DEADLETTER = STREAMS[-1]
# Buckets whose entries expire: reports rewritten by their writer while it lives.
_KV_MAX_AGE_S: dict[str, float] = {UPSTREAM_STATUS_BUCKET: UPSTREAM_STATUS_TTL_S}


class BusError(Exception):
    """A publish or a request over NATS failed; the subclasses say how."""


class BusUnavailable(BusError):
    """NATS could not be reached (or did not answer) in time."""


class NoResponders(BusUnavailable):
    """Nobody listens on the subject: the request certainly reached no one."""


class InvalidReply(BusError):
    """The answer does not decode as the reply expected. ``detail`` says how, in words that
    follow the peer's name ("billing sent an unreadable answer")."""

    def __init__(self, subject: str, detail: str) -> None:
        super().__init__(f"reply on {subject}: {detail}")
        self.detail = detail


class ErrorReply(BusError):
    """The peer answered with the contract's error document (:class:`ApiError`)."""

    def __init__(self, subject: str, error: ApiError) -> None:
        super().__init__(f"reply on {subject}: {error.error} ({error.status}): {error.message}")
        self.error = error


class CredentialsRefused(BusUnavailable, StartupRefused):
    """NATS refused this service's credentials (a wrong password, a user removed): waiting
    cannot help, so a service refuses to start (exit 2) rather than retry forever."""


_CANCEL_ATTEMPTS = 50  # a first connection attempt cancelled until it ends (see Bus.close)

# Refusals of the credentials in a row after a reconnect that are final: one alone may be a
# server still loading its users while it restarts.
REFUSALS_FINAL = 3


class Bus:
    """A NATS client with JetStream; build it with :meth:`connect` (waits until connected) or
    :meth:`connecting` (at once: the connection is made in the background).

    ``connected`` is set once the first connection is made; until then nothing reaches NATS
    (requests and publishes fail at once with :class:`BusUnavailable`, KV watches wait).
    ``refused`` is set when NATS refused the credentials: at the first connection, or
    :data:`REFUSALS_FINAL` times in a row after a reconnect (the user was removed): the runner
    then exits with the configuration error's status. ``closed`` is set when the connection closed for good.
    """

    def __init__(
        self,
        nc: NatsClient,
        closed: asyncio.Event,
        *,
        connected: asyncio.Event | None = None,
        refused: asyncio.Event | None = None,
        name: str = "",
    ) -> None:
        self._nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.closed = closed
        self.refused = refused or asyncio.Event()
        self.name = name
        if connected is None:
            connected = asyncio.Event()
            connected.set()
        self.connected = connected
        self._connecting: asyncio.Future[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()  # requests answered concurrently
        self.metrics = ConsumerMetrics()
        # Replicas and limits of what this bus declares; a service sets its settings' own.
        self.limits = JetStreamLimits()
        self._acks: _AckInbox | None = None  # publish_batch's reply subscription
        # Set (and replaced by a fresh one) at each reconnect: an idle KV watch sleeps until a
        # change, its stop, or this, rather than waking on a timer to look for a reconnect.
        self._reconnected = asyncio.Event()

    def _signal_reconnect(self) -> None:
        reconnected, self._reconnected = self._reconnected, asyncio.Event()
        reconnected.set()

    @classmethod
    async def connect_as(cls, settings: BaseServiceSettings, *, name: str) -> Bus:
        """Connect with a service's settings (see :meth:`connecting_as`), waiting for NATS while
        it is away; raises :class:`CredentialsRefused` when NATS refuses the credentials."""
        bus = cls.connecting_as(settings, name=name)
        await bus.wait_connected()
        return bus

    @classmethod
    def connecting_as(cls, settings: BaseServiceSettings, *, name: str) -> Bus:
        """A bus with a service's settings (its URL, credentials, TLS, inbox, and the replicas
        and limits of the streams and buckets it declares), connecting in the background."""
        bus = cls.connecting(settings.nats_url, name=name, options=nats_connect_options(settings))
        bus.limits = jetstream_limits(settings)
        return bus

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str,
        connect_timeout_s: float = 5.0,
        options: NatsConnectOptions | None = None,
    ) -> Bus:
        """Connect (credentials and TLS from ``options``), waiting for NATS while it is away;
        raises :class:`CredentialsRefused` when NATS refuses the credentials."""
        bus = cls.connecting(url, name=name, connect_timeout_s=connect_timeout_s, options=options)
        await bus.wait_connected()
        return bus

    @classmethod
    def connecting(
        cls,
        url: str,
        *,
        name: str,
        connect_timeout_s: float = 5.0,
        options: NatsConnectOptions | None = None,
    ) -> Bus:
        """A bus whose first connection is made in the background (retried while NATS is
        away); :meth:`wait_connected` waits for it. Call it with the event loop running."""
        closed, connected, refused = asyncio.Event(), asyncio.Event(), asyncio.Event()
        refusals = 0

        async def on_closed() -> None:
            # A server that drops a connected client whose user it no longer knows closes the
            # connection for good; that too is a refusal, not an outage.
            if "authorization" in str(nc.last_error or "").lower():
                refused.set()
            closed.set()

        async def on_error(exc: Exception) -> None:
            # The server's own messages name a subject or say "Authorization Violation", never
            # a secret; a refusal means a grant or a credential is wrong, so it is said plainly.
            nonlocal refusals
            text = str(exc)
            if "authorization violation" in text.lower():
                refusals += 1
                log.error("nats refused the credentials of %s", name)
                # At the first connection one refusal is final (nats-py may give up on the
                # connection after it without a word); after a reconnect, a few in a row.
                if refusals >= REFUSALS_FINAL or not connected.is_set():
                    refused.set()
            elif "permissions violation" in text.lower():
                log.error("nats refused: %s", text[:300])
            else:
                log.warning("nats error: %s", type(exc).__name__)

        async def on_disconnected() -> None:
            log.warning("nats disconnected; reconnecting")

        async def on_reconnected() -> None:
            nonlocal refusals
            refusals = 0
            log.info("nats reconnected")
            bus._signal_reconnect()

        nc = NatsClient()
        bus = cls(nc, closed, connected=connected, refused=refused, name=name)

        async def first_connection() -> None:
            nonlocal refusals
            connect: Callable[..., Awaitable[None]] = nc.connect  # reconnect wait takes floats
            # nats-py retries a first connection forever (we want that while NATS is away:
            # services may start first), also when the credentials are refused: ``refused``
            # tells that one apart, which cannot get better.
            try:
                await connect(
                    _servers(url),
                    name=name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    connect_timeout=max(1, int(connect_timeout_s)),
                    closed_cb=on_closed,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                    pending_size=8 * 1024 * 1024,
                    **_auth_arguments(options or NatsConnectOptions()),
                )
            except (nats.errors.Error, OSError) as error:
                log.error("nats connection of %s given up: %s", name, type(error).__name__)
            if not nc.is_connected:  # given up without a connection: closed, never retried
                if "authorization" in str(nc.last_error or "").lower():
                    refused.set()
                closed.set()
                return
            refusals = 0
            connected.set()

        bus._connecting = asyncio.ensure_future(first_connection())
        return bus

    async def wait_connected(self) -> None:
        """Until the first connection is made; :class:`CredentialsRefused` (the bus closed)
        when NATS refuses the credentials instead, :class:`BusUnavailable` when the client gave
        up otherwise."""
        if self.connected.is_set():
            return
        waits = [
            asyncio.ensure_future(e.wait()) for e in (self.connected, self.refused, self.closed)
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.connected.is_set():
            return
        await self.close()
        if self.refused.is_set():
            raise CredentialsRefused(f"NATS refused the credentials of {self.name}")
        raise BusUnavailable(f"the NATS connection of {self.name} closed before it was made")

    async def until_connected(self, stop: asyncio.Event) -> bool:
        """Wait for the first connection (or ``stop``, or the bus closing); whether it came."""
        while not self.connected.is_set():
            if stop.is_set() or self.closed.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), timeout=0.5)
        return True

    @property
    def client(self) -> NatsClient:
        return self._nc

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            # Never connected: nothing to drain. nats-py swallows a cancellation that lands in
            # the cleanup between two attempts (and tries again), so it is cancelled until done.
            for _ in range(_CANCEL_ATTEMPTS):
                self._connecting.cancel()
                await asyncio.wait({self._connecting}, timeout=0.1)
                if self._connecting.done():
                    if not self._connecting.cancelled():
                        self._connecting.exception()  # retrieved: nothing left to report
                    break
            with contextlib.suppress(Exception):
                await self._nc.close()
            self.closed.set()
            return
        if self._serving:  # let requests in flight answer before the connection drains
            await asyncio.wait(set(self._serving), timeout=5.0)
        try:
            await asyncio.wait_for(self._nc.drain(), timeout=5.0)
        except Exception:  # noqa: BLE001 (draining is best effort; closing is what must happen)
            await self._nc.close()
        self.closed.set()

    async def consumer_backlog(self, stream: str, durable: str) -> int | None:
        """Messages of ``stream`` the durable has not acknowledged yet (waiting, and delivered
        but not acknowledged); None when JetStream does not answer (the operator's live view)."""
        try:
            info = await self.js.consumer_info(stream, durable, timeout=2.0)
        except (NatsTimeoutError, NoRespondersError, ConnectionClosedError, APIError):
            return None
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    # -- declarations -----------------------------------------------------------------------

    async def ensure_stream(self, spec: StreamSpec) -> None:
        limits = self.limits.for_stream(spec.name)
        config = api.StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            duplicate_window=spec.duplicate_window_s,
            max_age=spec.max_age_s or limits.max_age_s,
            max_bytes=limits.max_bytes,
            # Full: refuse the publish (the publisher keeps the event and retries), never drop.
            discard=api.DiscardPolicy.NEW,
            num_replicas=self.limits.replicas,
            storage=api.StorageType.FILE,
        )
        try:
            await self.js.add_stream(config)
        except BadRequestError:
            await self.js.update_stream(config)

    async def ensure_streams(self, specs: tuple[StreamSpec, ...] = STREAMS) -> None:
        for spec in specs:
            await self.ensure_stream(spec)

    async def ensure_kv(self, bucket: str, *, history: int = 1) -> KeyValue:
        try:
            return await self.js.key_value(bucket)
        except (NotFoundError, BadRequestError):
            return await self.js.create_key_value(
                bucket=bucket,
                history=history,
                ttl=_KV_MAX_AGE_S.get(bucket),
                replicas=self.limits.replicas,
                max_bytes=self.limits.kv_max_bytes,  # full: a put is refused (discard new)
            )

    async def watch_kv(
        self,
        bucket: str,
        on_change: Callable[[str, bytes | None], None],
        *,
        ready: asyncio.Event | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Mirror a KV bucket until ``stop``: ``on_change(key, value)`` for every current entry,
        then for every change (``value`` None: deleted or purged). ``ready`` is set once the
        current entries were delivered. After an error (NATS away) the watch starts over, which
        delivers the current entries again, so a mirror catches up with what it missed.
        """
        stop = stop or asyncio.Event()
        if not await self.until_connected(stop):
            return
        while not stop.is_set() and not self.closed.is_set():
            # Taken before the watch starts, so a reconnect meanwhile starts it over too.
            reconnected = self._reconnected
            try:
                kv = await self.ensure_kv(bucket)
                watcher: Any = await kv.watchall()
                _drop_flow_control_poll(watcher)
            except (nats.errors.Error, OSError) as exc:
                log.warning("kv watch %s not started (%s); retrying", bucket, type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            try:
                # After a reconnect (a NATS restart) the watch's consumer may be gone without an
                # error, so the watch is started over: that re-delivers every current entry,
                # deletions included. A stop ends the watch at once (no poll to wait out).
                await unless_stopped(
                    _follow(watcher, on_change, ready), stop, self.closed, reconnected
                )
            except (nats.errors.Error, OSError) as exc:
                log.warning("kv watch %s failed (%s); restarting", bucket, type(exc).__name__)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()

    # -- publishing ---------------------------------------------------------------------------

    async def publish_event(self, event: Event, *, timeout_s: float = 5.0) -> api.PubAck:
        return await self.publish(event.subject, event.to_json(), event.event_id, timeout_s)

    async def publish(
        self, subject: str, payload: bytes, msg_id: str, timeout_s: float = 5.0
    ) -> api.PubAck:
        """Publish to JetStream and wait for the stream's ack; ``duplicate`` says it was a retry."""
        if not self.connected.is_set():
            raise BusUnavailable(f"publish to {subject}: not connected to NATS yet")
        try:
            return await self.js.publish(
                subject, payload, timeout=timeout_s, headers={"Nats-Msg-Id": msg_id}
            )
        except (
            NatsTimeoutError,
            NoRespondersError,
            NoStreamResponseError,  # no stream takes the subject (yet)
            ConnectionClosedError,
            OSError,
        ) as exc:
            raise BusUnavailable(f"publish to {subject} failed: {type(exc).__name__}") from exc
        except APIError as exc:  # the stream refused it (full: discard new); kept and retried
            raise BusUnavailable(f"publish to {subject} refused: {exc.description}") from exc

    async def publish_batch(
        self, messages: Sequence[tuple[str, str, bytes]], *, timeout_s: float = 5.0
    ) -> list[BusUnavailable | None]:
        """Publish ``(msg_id, subject, payload)`` messages to JetStream together and wait for
        their acks; for each, None once the stream stored it (or found it a duplicate), or the
        :class:`BusUnavailable` it failed with (refused, no stream, no ack within
        ``timeout_s``). Never raises for a message: the caller retries the failed ones with the
        same ``Nats-Msg-Id``, which the stream's duplicate window stores once.

        Cheaper than :meth:`publish` per message: the acks come to one reply subscription
        (:class:`_AckInbox`, made once), each message's reply subject is that inbox and a
        counter (no random token, so no ``getrandom`` per message), and the batch waits with one
        timer rather than a task and a timer per message."""
        if not self.connected.is_set():
            return [BusUnavailable("publish: not connected to NATS yet")] * len(messages)
        if self._acks is None:
            self._acks = _AckInbox(self._nc)
        return await self._acks.publish(messages, timeout_s)

    # -- request / reply ----------------------------------------------------------------------

    async def request(self, subject: str, payload: bytes, *, timeout_s: float) -> bytes:
        """One request, its raw answer; :class:`BusUnavailable` or :class:`NoResponders`."""
        return await self.call(subject, payload, _as_is, timeout_s=timeout_s)

    @overload
    async def call(
        self, subject: str, request: BaseModel | bytes, reply: type[M], *, timeout_s: float
    ) -> M: ...

    @overload
    async def call(
        self,
        subject: str,
        request: BaseModel | bytes,
        reply: Callable[[bytes], T],
        *,
        timeout_s: float,
    ) -> T: ...

    async def call(
        self,
        subject: str,
        request: BaseModel | bytes,
        reply: type[BaseModel] | Callable[[bytes], Any],
        *,
        timeout_s: float,
    ) -> Any:
        """Ask ``subject`` and decode its answer; every failure is a :class:`BusError`.

        ``request`` is a contract model, or its JSON already built (the edge's hot path builds
        it with orjson). ``reply`` is the reply model, or a decoder of the raw answer that
        raises ``ValueError`` on one it cannot read (again the edge's, which skips pydantic).
        A model reply is validated straight from the JSON; only when that fails is the answer
        looked at as an error document, so a good answer costs one validation.
        """
        if not self.connected.is_set():
            raise BusUnavailable(f"request to {subject}: not connected to NATS yet")
        payload = request if isinstance(request, bytes) else request.model_dump_json().encode()
        # The request is made here rather than through :meth:`request`: one coroutine less on
        # the edge's hot path (a measurable share of an admission's own cost).
        try:
            answer = await self._nc.request(subject, payload, timeout=timeout_s)
        except NoRespondersError as exc:
            raise NoResponders(f"request to {subject}: nobody answers it") from exc
        except (NatsTimeoutError, TimeoutError, ConnectionClosedError, OSError) as exc:
            raise BusUnavailable(f"request to {subject}: {type(exc).__name__}") from exc
        raw = answer.data
        if isinstance(reply, type):
            try:
                return cast(type[BaseModel], reply).model_validate_json(raw)
            except ValidationError:
                raise _refusal_or_nonsense(subject, raw) from None
        try:
            return reply(raw)
        except ValueError as exc:
            raise InvalidReply(subject, "sent an unexpected answer") from exc

    async def serve(
        self,
        subject: str,
        handler: Callable[[bytes], Awaitable[bytes]],
        *,
        queue: str,
        concurrency: int = 1,
    ) -> None:
        """Answer requests on ``subject`` (queue group: one replica answers each request).

        nats-py runs a subscription's callback for one message at a time; a handler that waits
        on I/O (a database round trip) would serialise every request behind the one before it.
        With ``concurrency`` > 1, up to that many requests are handled at once, each in its own
        task (the next message is taken only when a slot is free, so backpressure remains).
        """

        async def answer(msg: Msg) -> None:
            try:
                reply = await handler(msg.data)
            except Exception:  # the requester must get an answer, never a timeout
                log.exception("request handler for %s failed", subject)
                reply = b'{"error":"internal"}'
            await msg.respond(reply)

        if concurrency <= 1:
            await self._nc.subscribe(subject, queue=queue, cb=answer)
            await self._subscribed()
            return
        slots = asyncio.Semaphore(concurrency)

        async def answer_in_slot(msg: Msg) -> None:
            try:
                # No one awaits this task: a connection lost meanwhile is the requester's timeout.
                with contextlib.suppress(ConnectionClosedError, OSError):
                    await answer(msg)
            finally:
                slots.release()

        async def on_request(msg: Msg) -> None:
            await slots.acquire()
            task = asyncio.create_task(answer_in_slot(msg))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

        await self._nc.subscribe(subject, queue=queue, cb=on_request)
        await self._subscribed()

    async def _subscribed(self) -> None:
        """Wait until the server has the subscription (a PING/PONG round trip after the SUB), so
        that a service reporting ready after ``serve`` never answers "no responders"."""
        with contextlib.suppress(NatsTimeoutError, ConnectionClosedError):
            await self._nc.flush(timeout=5)

    # -- consuming ----------------------------------------------------------------------------

    async def consume(
        self,
        *,
        stream: str,
        durable: str,
        subject: str,
        handler: Callable[[Msg], Awaitable[None]],
        batch: int = 64,
        ack_wait_s: float = 30.0,
        max_deliver: int = -1,
        stop: asyncio.Event | None = None,
        linger_s: float = 0.0,
        linger_max_s: float | None = None,
    ) -> None:
        """Run a durable pull consumer until ``stop`` is set (or the connection closes for good).

        Each message is handled in order; the handler's outcome decides ack, nak or term. The loop
        survives NATS restarts: fetch errors while disconnected are waited out. ``linger_s`` and
        ``linger_max_s`` as in :meth:`consume_batches`: fewer fetches, each of more messages,
        when traffic is light.
        """
        stop = stop or asyncio.Event()
        linger = _batch_linger(linger_s, linger_max_s, batch)

        async def one_by_one(msgs: list[Msg], waited_s: float) -> None:
            for msg in msgs:
                await self._dispatch(durable, msg, handler)
            await _linger(linger.after(len(msgs), waited_s), stop)

        await self._pull(stream, durable, subject, batch, ack_wait_s, max_deliver, stop, one_by_one)

    async def consume_batches(
        self,
        *,
        stream: str,
        durable: str,
        subject: str,
        handler: Callable[[list[Msg]], Awaitable[list[BaseException | None]]],
        batch: int = 256,
        ack_wait_s: float = 30.0,
        max_deliver: int = -1,
        stop: asyncio.Event | None = None,
        linger_s: float = 0.0,
        linger_max_s: float | None = None,
        linger_target: int = LINGER_TARGET,
    ) -> None:
        """Like :meth:`consume`, but the handler gets every fetched message at once (one database
        transaction for many messages) and returns one outcome per message, in order: ``None``
        acks, :class:`RetryableError` naks with its delay, anything else terms. If the handler
        raises, the whole batch is redelivered (after the error's delay when it is retryable).
        ``linger_s``: after a batch shorter than ``batch``, wait before the next fetch, so that
        messages trickling in one at a time are handled together (a fixed cost per batch, such
        as a commit, is then shared) at the price of that much more delay. With ``linger_max_s``
        the wait adapts (:class:`~aiapi_shared.linger.AdaptiveLinger`): it grows up to that
        bound while batches come in short, falls back towards ``linger_s`` as they grow, and is
        skipped after a full batch; it steers towards batches of ``linger_target`` messages. A
        stop cuts it short.
        """
        stop = stop or asyncio.Event()
        linger = _batch_linger(linger_s, linger_max_s, batch, linger_target)

        async def all_at_once(msgs: list[Msg], waited_s: float) -> None:
            await self._dispatch_batch(durable, msgs, handler)
            await _linger(linger.after(len(msgs), waited_s), stop)

        await self._pull(
            stream, durable, subject, batch, ack_wait_s, max_deliver, stop, all_at_once
        )

    async def _pull(
        self,
        stream: str,
        durable: str,
        subject: str,
        batch: int,
        ack_wait_s: float,
        max_deliver: int,
        stop: asyncio.Event | None,
        on_fetched: Callable[[list[Msg], float], Awaitable[None]],
    ) -> None:
        """The durable pull loop both consumers share: declare, fetch, hand over, survive outages."""
        stop = stop or asyncio.Event()
        config = api.ConsumerConfig(
            name=durable,
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_deliver=max_deliver,
            filter_subject=subject,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        sub = await self._pull_subscribe(stream, durable, config, stop)
        if sub is None:
            return

        async def afresh(old: Any) -> Any:
            """A new subscription to the consumer (None: stopped meanwhile)."""
            with contextlib.suppress(Exception):
                await old.unsubscribe()
            return await self._pull_subscribe(stream, durable, config, stop)

        loop = asyncio.get_running_loop()
        wait_s = FETCH_WAIT_FIRST_S
        try:
            since = loop.time()  # when the loop began waiting for the next batch
            while not stop.is_set() and not self.closed.is_set():
                try:
                    # nats-py's fetch can hang for good across a NATS restart (its timeout never
                    # fires, no pull request reaches the server again, messages pile up: found
                    # by bench/chaos.py), so it is bounded here and a stuck one is replaced.
                    fetch = _fetch(sub, batch, wait_s)
                    msgs = await unless_stopped(
                        asyncio.wait_for(fetch, wait_s + FETCH_BOUND_S), stop, self._reconnected
                    )
                    if msgs is None:
                        if stop.is_set():
                            break  # stopped while the fetch waited
                        # Reconnected: the pull request went with the old server. The consumer
                        # is looked up again (retried until JetStream answers after its restart:
                        # a pull request sent before would go unanswered) and a new one sent,
                        # on the same subscription: a pull request written while NATS was away
                        # reaches the new server when the connection comes back, and what the
                        # server delivers to it must find a subscriber, or it would wait out
                        # its ack_wait before anyone saw it.
                        if not await self._declare_consumer(stream, durable, config, stop):
                            return
                        wait_s = FETCH_WAIT_FIRST_S
                        continue
                except NatsTimeoutError:
                    wait_s = min(FETCH_WAIT_S, wait_s * 2)  # idle: a longer poll
                    continue
                except TimeoutError:
                    log.warning(
                        "consumer %s: a fetch outlived its timeout; pulling afresh", durable
                    )
                    sub = await afresh(sub)
                    if sub is None:
                        return
                    wait_s = FETCH_WAIT_FIRST_S
                    continue
                except (ConnectionClosedError, NoRespondersError, OSError, APIError) as exc:
                    # APIError: a status from the server (NotFound among them) while a node is
                    # lost and the consumer's leader moves; the next fetch goes to the new one.
                    log.warning("consumer %s fetch failed (%s)", durable, type(exc).__name__)
                    await asyncio.sleep(0.5)
                    continue
                await on_fetched(msgs, loop.time() - since)
                since = loop.time()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _dispatch_batch(
        self,
        durable: str,
        msgs: list[Msg],
        handler: Callable[[list[Msg]], Awaitable[list[BaseException | None]]],
    ) -> None:
        try:
            outcomes: list[BaseException | None] = await handler(msgs)
        except RetryableError as exc:
            log.warning("consumer %s: batch retried later: %s", durable, exc)
            await asyncio.gather(*(_settle(m.nak(delay=exc.delay_s)) for m in msgs))
            return
        except Exception as exc:
            log.exception("consumer %s: batch handler failed; redelivering", durable)
            # Which message is poison is for the handler to say, one by one: a whole batch
            # failing is redelivered, never set aside.
            failed = RuntimeError(str(exc)) if isinstance(exc, PoisonMessage) else exc
            outcomes = [failed] * len(msgs)
        # An ack waits for nothing (it is written with the next flush), so the handled ones are
        # acked in turn, without the task per message a gather makes; the others may publish a
        # dead letter and wait for its ack, so they go together.
        others = []
        for msg, outcome in zip(msgs, outcomes, strict=True):
            if outcome is None:
                await _settle(msg.ack())
            else:
                others.append(self._settle_outcome(durable, msg, outcome))
        if others:
            await asyncio.gather(*others)

    async def _settle_outcome(self, durable: str, msg: Msg, outcome: BaseException | None) -> None:
        """Ack a handled message; nak a retryable one after its delay; set a poison one aside;
        redeliver any other with backoff (never terminated: a bug must not drop money)."""
        if outcome is None:
            await _settle(msg.ack())
        elif isinstance(outcome, RetryableError):
            await _settle(msg.nak(delay=outcome.delay_s))
        elif isinstance(outcome, PoisonMessage):
            await self._set_aside(durable, msg, str(outcome))
        else:
            self.metrics.retries.labels(durable).inc()
            delay_s = redelivery.backoff_s(_deliveries(msg))
            log.warning(
                "consumer %s: %s; redelivering in %.0f s", durable, type(outcome).__name__, delay_s
            )
            await _settle(msg.nak(delay=delay_s))

    async def _set_aside(self, durable: str, msg: Msg, reason: str) -> None:
        """Copy a poison message to the dead-letter stream, then terminate it. If the copy
        cannot be stored, the message is redelivered instead: it is never dropped unseen."""
        origin = _origin(msg)
        headers = redelivery.deadletter_headers(origin, durable, reason)
        subject = redelivery.deadletter_subject(durable)
        try:
            try:
                await self.js.publish(subject, msg.data, timeout=5.0, headers=headers)
            except (NoRespondersError, NoStreamResponseError):  # no DEADLETTER stream yet
                await self.ensure_stream(_DEADLETTER)
                await self.js.publish(subject, msg.data, timeout=5.0, headers=headers)
        except (nats.errors.Error, OSError) as exc:
            log.error(
                "consumer %s: poison message not set aside (%s); redelivering",
                durable,
                type(exc).__name__,
            )
            await _settle(msg.nak(delay=redelivery.backoff_s(_deliveries(msg))))
            return
        self.metrics.dead_lettered.labels(durable).inc()
        log.error(
            "consumer %s: poison message set aside in %s (%s #%d): %s",
            durable,
            redelivery.DEADLETTER_STREAM,
            origin.stream,
            origin.sequence,
            reason,
        )
        await _settle(msg.term())

    async def _pull_subscribe(
        self, stream: str, durable: str, config: api.ConsumerConfig, stop: asyncio.Event
    ) -> Any:
        """A subscription of the consumer's own (None: stopped before the consumer was there)."""
        if not await self._declare_consumer(stream, durable, config, stop):
            return None
        return await self.js.pull_subscribe_bind(durable=durable, stream=stream)

    async def _declare_consumer(
        self, stream: str, durable: str, config: api.ConsumerConfig, stop: asyncio.Event
    ) -> bool:
        """Look the durable consumer up, creating it if it is not there, retried while NATS or
        JetStream is away; False when stopped first."""
        while not stop.is_set() and not self.closed.is_set():
            try:
                try:
                    await self.js.consumer_info(stream, durable)
                except NotFoundError:
                    await self.js.add_consumer(stream, config=config)
                return True
            except (
                NatsTimeoutError,
                NoRespondersError,
                ConnectionClosedError,
                ServiceUnavailableError,  # JetStream still starting (after a NATS restart)
                OSError,
            ) as exc:
                log.warning("consumer %s not created yet (%s)", durable, type(exc).__name__)
                await asyncio.sleep(0.5)
        return False

    async def _dispatch(
        self, durable: str, msg: Msg, handler: Callable[[Msg], Awaitable[None]]
    ) -> None:
        try:
            await handler(msg)
        except RetryableError as exc:
            log.warning("consumer %s: retrying later: %s", durable, exc)
            await _settle(msg.nak(delay=exc.delay_s))
            return
        except Exception as exc:
            if not isinstance(exc, PoisonMessage):
                log.exception("consumer %s: handler failed", durable)
            await self._settle_outcome(durable, msg, exc)
            return
        await _settle(msg.ack())

    # -- dead letters (the operator's tools: ``python -m aiapi_shared.deadletter``) ------------

    async def dead_letters(self, *, limit: int = 100) -> list[redelivery.DeadLetter]:
        """The oldest ``limit`` messages set aside, oldest first."""
        found: list[redelivery.DeadLetter] = []
        sequence = 1
        while len(found) < limit:
            try:
                raw = await self.js.get_msg(
                    redelivery.DEADLETTER_STREAM,
                    seq=sequence,
                    subject=f"{redelivery.DEADLETTER_PREFIX}>",
                    next=True,
                )
            except NotFoundError:  # no more (or no DEADLETTER stream at all)
                break
            except (nats.errors.Error, OSError) as exc:
                raise BusUnavailable(f"dead letters unreadable: {type(exc).__name__}") from exc
            found.append(_dead_letter(raw))
            sequence = (raw.seq or sequence) + 1
        return found

    async def replay_dead_letter(self, sequence: int) -> redelivery.DeadLetter:
        """Publish the dead letter at ``sequence`` again to its original subject (every consumer
        of that subject sees it again; they deduplicate by event id), then remove it. Raises
        ``LookupError`` when there is no such dead letter."""
        letter = await self._dead_letter_at(sequence)
        await self.publish(letter.subject, letter.data, letter.replay_msg_id())
        await self._delete_dead_letter(sequence)
        return letter

    async def drop_dead_letter(self, sequence: int) -> redelivery.DeadLetter:
        letter = await self._dead_letter_at(sequence)
        await self._delete_dead_letter(sequence)
        return letter

    async def _dead_letter_at(self, sequence: int) -> redelivery.DeadLetter:
        try:
            raw = await self.js.get_msg(redelivery.DEADLETTER_STREAM, seq=sequence)
        except NotFoundError:
            raise LookupError(f"no dead letter #{sequence}") from None
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailable(f"dead letter unreadable: {type(exc).__name__}") from exc
        letter = _dead_letter(raw)
        if not letter.subject:
            raise LookupError(f"#{sequence} names no original subject")
        return letter

    async def _delete_dead_letter(self, sequence: int) -> None:
        try:
            await self.js.delete_msg(redelivery.DEADLETTER_STREAM, sequence)
        except NotFoundError:
            return  # removed meanwhile (another operator): what was asked holds
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailable(f"dead letter not removed: {type(exc).__name__}") from exc


class _AckBatch:
    """The acks one :meth:`Bus.publish_batch` waits for: an outcome per message, ``None`` until
    its ack came (or when it was stored), and ``done`` once every message has one."""

    def __init__(self, size: int) -> None:
        self.outcomes: list[BusUnavailable | None] = [None] * size
        self.waiting = size
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def settle(self, index: int, outcome: BusUnavailable | None) -> None:
        self.outcomes[index] = outcome
        self.waiting -= 1
        if self.waiting == 0 and not self.done.done():
            self.done.set_result(None)


class _AckInbox:
    """One wildcard reply subscription for JetStream's acks to :meth:`Bus.publish_batch`.

    A message's reply subject is ``<inbox>.<n>`` (``n`` counts messages since the inbox was
    made; the inbox itself is a unique name, as nats-py makes one per connection). An ack that
    comes after its batch gave up finds no entry and is dropped: its message is retried under
    the same ``Nats-Msg-Id`` and stored once. The subscription outlives reconnects (nats-py
    subscribes again), and what was published while disconnected is sent after the reconnect
    from nats-py's buffer, or times out and is retried."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix = ""
        self._serial = 0
        self._waiting: dict[str, tuple[_AckBatch, int]] = {}
        self._subscribing = asyncio.Lock()

    async def _reply_prefix(self) -> str:
        async with self._subscribing:
            if not self._prefix:
                prefix = self._nc.new_inbox() + "."
                await self._nc.subscribe(prefix + "*", cb=self._on_ack)
                self._prefix = prefix
        return self._prefix

    async def publish(
        self, messages: Sequence[tuple[str, str, bytes]], timeout_s: float
    ) -> list[BusUnavailable | None]:
        batch = _AckBatch(len(messages))
        if not messages:
            return batch.outcomes
        prefix = self._prefix or await self._reply_prefix()
        tokens: list[str] = []
        try:
            for index, (msg_id, subject, payload) in enumerate(messages):
                self._serial += 1
                token = str(self._serial)
                self._waiting[token] = (batch, index)
                tokens.append(token)
                await self._nc.publish(
                    subject, payload, reply=prefix + token, headers={"Nats-Msg-Id": msg_id}
                )
        except (nats.errors.Error, OSError) as exc:  # closed, draining, buffer full
            self._waiting.pop(tokens.pop(), None)  # this one and the rest were not sent
            failed = BusUnavailable(f"publish failed: {type(exc).__name__}")
            for index in range(len(tokens), len(messages)):
                batch.settle(index, failed)
        try:
            async with asyncio.timeout(timeout_s):
                await batch.done
        except TimeoutError:
            pass
        finally:
            for token in tokens:
                entry = self._waiting.pop(token, None)
                if entry is not None:  # no ack came
                    batch.settle(entry[1], BusUnavailable("publish: no ack in time"))
        return batch.outcomes

    async def _on_ack(self, msg: Msg) -> None:
        entry = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if entry is not None:
            entry[0].settle(entry[1], _ack_outcome(msg))


def _ack_outcome(msg: Msg) -> BusUnavailable | None:
    """What JetStream answered a publish: None when it stored the message (or had it already)."""
    if msg.headers and msg.headers.get(api.Header.STATUS) == "503":
        return BusUnavailable("publish: no stream takes the subject")
    try:
        answer = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return BusUnavailable("publish: the ack does not decode")
    error = answer.get("error") if isinstance(answer, dict) else "not an object"
    if error is not None:  # refused (the stream is full: discard new): kept and retried
        detail = error.get("description", error) if isinstance(error, dict) else error
        return BusUnavailable(f"publish refused: {detail}")
    return None


def _dead_letter(raw: api.RawStreamMsg) -> redelivery.DeadLetter:
    return redelivery.DeadLetter.read(
        raw.seq or 0, raw.time, dict(raw.headers or {}), bytes(raw.data or b"")
    )


def _deliveries(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except (nats.errors.Error, ValueError, IndexError, AttributeError):  # not from JetStream
        return 1


def _origin(msg: Msg) -> redelivery.Origin:
    try:
        meta = msg.metadata
        stream, sequence = meta.stream, int(meta.sequence.stream)
    except (nats.errors.Error, ValueError, IndexError, AttributeError):
        stream, sequence = "", 0
    msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
    return redelivery.Origin(stream, sequence, msg.subject, msg_id)


def _auth_arguments(options: NatsConnectOptions) -> dict[str, Any]:
    """nats-py's keyword arguments for ``options`` (it reads the creds and seed files itself)."""
    arguments: dict[str, Any] = {}
    if options.user is not None and options.password is not None:
        arguments["user"] = options.user
        arguments["password"] = options.password.get_secret_value()
    if options.creds_file is not None:
        arguments["user_credentials"] = str(options.creds_file)
    if options.nkey_file is not None:
        arguments["nkeys_seed"] = str(options.nkey_file)
    if options.ca_file is not None or options.cert_file is not None:
        context = ssl.create_default_context(
            cafile=str(options.ca_file) if options.ca_file else None
        )
        if options.cert_file is not None and options.key_file is not None:
            context.load_cert_chain(str(options.cert_file), str(options.key_file))
        arguments["tls"] = context
    if options.inbox_prefix is not None:
        arguments["inbox_prefix"] = options.inbox_prefix
    return arguments


def _servers(url: str) -> list[str]:
    """``AIAPI_NATS_URL`` may list a cluster's nodes, comma-separated: the client tries each
    (it also learns the others from the cluster once connected)."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def _follow(
    watcher: Any, on_change: Callable[[str, bytes | None], None], ready: asyncio.Event | None
) -> None:
    """Deliver the watch's entries until the watcher stops; it waits without a timer."""
    while True:
        entry = await watcher.updates(timeout=None)
        if entry is None:
            if ready is not None:
                ready.set()
            continue
        if not isinstance(entry, KeyValue.Entry):
            return  # the watcher was stopped
        deleted = entry.operation in ("DEL", "PURGE")
        on_change(entry.key, None if deleted else bytes(entry.value or b""))


def _drop_flow_control_poll(watcher: Any) -> None:
    """End nats-py's flow-control task of a KV watch: four wake-ups a second per watch, for
    nothing. A watch is a callback subscription, and for those nats-py answers the server's flow
    control requests (and a stalled consumer's heartbeat) as they arrive, in its read loop: a
    callback subscription counts a message as delivered when it is received, so the answer is
    never deferred to the task, which only polls (every 0.25 s) for a deferred one."""
    jsi: Any = getattr(getattr(getattr(watcher, "_sub", None), "_sub", None), "_jsi", None)
    task = getattr(jsi, "_fctask", None)
    if isinstance(task, asyncio.Task):
        task.cancel()
        jsi._fctask = None


async def _fetch(sub: Any, batch: int, wait_s: float) -> list[Msg]:
    """Up to ``batch`` messages of a pull subscription: whatever is there, or the first to come
    within ``wait_s`` with those that came with it; ``NatsTimeoutError`` when none came.

    nats-py's ``fetch`` sends the same single pull request (``no_wait`` with ``expires``: the
    server waits for a first message, sends what it has, then ends the request with a 404; with
    nothing, a 408 at expiry; nothing after a full batch), but takes each message out of the
    subscription's queue through ``next_msg``: a task, a timer and a ``uuid4`` (a ``getrandom``)
    per message, for every usage event billing and accounts consume. Here the queue is drained
    as it is, with one wait per burst the socket delivers. nats-py's counters of the
    subscription's pending bytes (its slow-consumer limit) are kept as it keeps them."""
    inner = sub._sub
    queue: asyncio.Queue[Msg] = inner._pending_queue
    msgs: list[Msg] = []
    # Deliveries to an earlier pull that gave up (a bounded or cancelled fetch) are messages
    # like any other; a status left over was that pull's ending.
    while not queue.empty() and len(msgs) < batch:
        msg = queue.get_nowait()
        queue.task_done()  # nats-py's drain joins the queue: every get needs its task_done
        inner._pending_size -= len(msg.data)
        if _pull_status(msg) is None:
            msgs.append(msg)
    if msgs:
        return msgs
    request = {"batch": batch, "expires": max(1, int(wait_s * 1e9) - 100_000), "no_wait": True}
    await sub._nc.publish(sub._nms, orjson.dumps(request), reply=sub._deliver)
    while len(msgs) < batch:
        msg = queue.get_nowait() if not queue.empty() else await queue.get()
        queue.task_done()
        inner._pending_size -= len(msg.data)
        status = _pull_status(msg)
        if status is None:
            msgs.append(msg)
        elif status in _PULL_ENDED:
            break
        elif status != _HEARTBEAT:  # a heartbeat says nothing here
            raise APIError.from_msg(msg)  # 503 while a consumer's leader moves, among others
    if not msgs:
        raise NatsTimeoutError
    return msgs


# What ends a pull request: no more messages now (404), its wait expired (408), or the server
# dropped it (409: too many waiting, the consumer deleted or its leader changed).
_PULL_ENDED = frozenset(("404", "408", "409"))
_HEARTBEAT = "100"


def _pull_status(msg: Msg) -> str | None:
    """The status of a message the server sent a pull request, None for a message consumed."""
    if not msg.headers or msg.data:
        return None
    status = msg.headers.get(api.Header.STATUS)
    return str(status) if status else None


async def _settle(action: Awaitable[None]) -> None:
    """Ack/nak/term; if the connection dropped meanwhile the server redelivers after ack_wait."""
    with contextlib.suppress(ConnectionClosedError, NatsTimeoutError, OSError):
        await action


def _as_is(raw: bytes) -> bytes:
    return bytes(raw)


def _refusal_or_nonsense(subject: str, raw: bytes) -> ErrorReply | InvalidReply:
    """What an answer that is not the expected reply is: the contract's refusal, or nonsense."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return InvalidReply(subject, "sent an unreadable answer")
    if not isinstance(parsed, dict) or "error" not in parsed:
        return InvalidReply(subject, "sent an unexpected answer")
    try:
        return ErrorReply(subject, ApiError.model_validate(parsed))
    except ValidationError:
        return InvalidReply(subject, "failed to answer")  # ``{"error":"internal"}`` from serve


def decode_event(cls: type[E], data: bytes) -> E:
    """Parse an event payload; a malformed one is poison (it will never parse)."""
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        raise PoisonMessage(f"{cls.__name__} does not parse: {exc.error_count()} errors") from exc


def _batch_linger(
    linger_s: float, linger_max_s: float | None, batch: int, target: int = LINGER_TARGET
) -> AdaptiveLinger:
    """A consumer loop's linger: fixed at ``linger_s`` unless ``linger_max_s`` lets it adapt."""
    top = linger_s if linger_max_s is None else linger_max_s
    return AdaptiveLinger(linger_s, top, target=target, batch=batch)


async def _linger(wait_s: float, stop: asyncio.Event) -> None:
    """Wait ``wait_s`` (a batch loop's linger), or less if ``stop`` is set meanwhile."""
    if wait_s > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait_s)
