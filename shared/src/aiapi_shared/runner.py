"""The one way an aiapi service process runs (I/O: signals, sockets, uvicorn).

Order: the internal listener (liveness, readiness, metrics) opens first, so an orchestrator
sees a live process while it starts; then ``service.start()``; then the public listeners.
It runs until SIGTERM or SIGINT, the service's ``failed`` event, NATS closing for good, or a
listener stopping by itself. Then readiness turns 503, the public listeners stop accepting and
drain (bounded by ``graceful_s``), the service stops, and the internal listener closes last.
Exit status: :class:`~aiapi_shared.lifecycle.ExitCode`. A service's own process
(:func:`launch`) sets the garbage collector for a server and, once started, freezes its
start-up objects out of later collections (:mod:`aiapi_shared.gc_tuning`).

uvicorn's options live here once: uvloop (the runner's loop), httptools, no access log, no
``server`` header, no log config of its own (the JSON logs of :mod:`aiapi_shared.logs`), no
lifespan (the runner starts and stops the service), and no signal handling (the runner's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, NoReturn, TypeVar

import uvicorn
import uvloop
from pydantic import ValidationError
from uvicorn.server import ServerState

from aiapi_shared import gc_tuning
from aiapi_shared.lifecycle import ExitCode, Service, StartupRefused
from aiapi_shared.logs import configure_logging
from aiapi_shared.probes import Probes
from aiapi_shared.settings import BaseServiceSettings

log = logging.getLogger("aiapi.runner")

S = TypeVar("S", bound=BaseServiceSettings)

# The listen queue asked for. Linux caps it at ``net.core.somaxconn`` without a word (4,096 by
# default since 5.4), so a host that expects larger bursts of new connections (5,000 clients
# connecting within a second to one edge overflowed 4,096, and each dropped SYN costs its client
# 1 to 15 s) raises that sysctl and nothing else. uvicorn listens again on the socket it is
# given, with its own ``backlog``: the same number for it.
LISTEN_BACKLOG = 65535

_UVICORN: dict[str, Any] = {
    "backlog": LISTEN_BACKLOG,
    "loop": "none",  # the runner's uvloop is already running
    "http": "httptools",
    "lifespan": "off",
    "access_log": False,
    "log_config": None,
    "server_header": False,
    "proxy_headers": False,  # no X-Forwarded-* rewriting on every request
}
_INTERNAL_GRACE_S = 1.0


@dataclass(frozen=True)
class Listener:
    """One HTTP listener: an ASGI app on an address, with uvicorn options of its own. ``sock``
    (tests, which bind port 0 first to learn the port) replaces binding ``host:port``."""

    name: str
    app: Any
    host: str
    port: int
    options: Mapping[str, Any] = field(default_factory=dict)
    sock: socket.socket | None = None

    def open_socket(self) -> socket.socket:
        return self.sock if self.sock is not None else listen(self.host, self.port)


@dataclass(frozen=True)
class Plan:
    """What one process runs: its service, its listeners, its internal listener's address."""

    name: str
    service: Service
    listeners: tuple[Listener, ...]
    internal: tuple[str, int] | None
    instance_id: str
    log_level: str = "INFO"
    redact: tuple[str, ...] = ()  # values never to appear in a log line (aiapi_shared.logs)
    start_timeout_s: float = 120.0
    graceful_s: float = 10.0
    # An internal listener already bound (an edge worker's, by its supervisor): used instead
    # of binding ``internal``.
    internal_sock: socket.socket | None = None

    @classmethod
    def of(
        cls, settings: BaseServiceSettings, service: Service, *listeners: Listener, **extra: Any
    ) -> Plan:
        fields: dict[str, Any] = {
            "internal": (settings.internal_host, settings.internal_port),
            "instance_id": settings.instance_id or secrets.token_hex(8),
            "log_level": settings.log_level,
            "start_timeout_s": settings.start_timeout_s,
        }
        return cls(
            name=settings.service_name, service=service, listeners=listeners, **(fields | extra)
        )


def load_settings(settings_type: type[S]) -> S:
    """The settings from the environment; invalid or missing ones refuse the start, by name
    and error type only (pydantic's own message would repeat the value, maybe a secret)."""
    try:
        return settings_type()
    except ValidationError as error:
        # A check across fields (a model validator) has no field to name: its own message is
        # shown instead; those messages are ours and never hold a value.
        problems = "; ".join(
            f"AIAPI_{'.'.join(str(p) for p in e['loc']).upper()}: {e['type']}"
            if e["loc"]
            else str(e["msg"])
            for e in error.errors(include_input=False)
        )
        raise StartupRefused(f"invalid or missing settings: {problems}") from None


def launch(build: Callable[[], Plan]) -> NoReturn:
    """``python -m aiapi_<service>``: build the plan (refusals exit 2), run it, exit."""
    configure_logging("INFO")
    try:
        plan = build()
    except StartupRefused as refusal:
        log.error("refusing to start: %s", refusal)
        sys.exit(ExitCode.REFUSED)
    configure_logging(plan.log_level, redact=plan.redact)
    gc_tuning.for_service()
    sys.exit(uvloop.run(serve(plan, started=gc_tuning.freeze_startup)))


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one), bound before serving so a taken port is a
    start-up failure the runner reports, not uvicorn's ``sys.exit`` inside a task."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _DatedState(ServerState):
    """uvicorn's state shared by a listener's connections, whose ``default_headers`` (the Date
    header and the configured ones, read once per response) are made when read, at most once a
    second, instead of by a timer."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._config = config
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = []
        super().__init__()

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            date = [(b"date", formatdate(now, usegmt=True).encode())]
            self._headers = (date if self._config.date_header else []) + (
                self._config.encoded_headers
            )
        return self._headers

    @default_headers.setter
    def default_headers(self, _value: list[tuple[bytes, bytes]]) -> None:
        pass  # uvicorn's own tick (at start-up): the property makes them


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the runner owns SIGTERM and SIGINT (uvicorn would
    re-raise the signal after a graceful stop, and the process would not exit 0).

    And without its wake-ups: uvicorn's main loop ticks every 0.1 s to refresh the Date header
    (once a second) and to notice ``should_exit``. Here the Date header is made when a response
    reads it (:class:`_DatedState`) and the loop sleeps until a stop: an idle listener does not
    wake at all (with a tick a second, each process woke once a second per listener).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit_now = asyncio.Event()  # before uvicorn's __init__ sets should_exit
        super().__init__(config)
        self.server_state = _DatedState(config)

    @property
    def should_exit(self) -> bool:
        return self._exit_now.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit_now.set()
        else:
            self._exit_now.clear()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        # uvicorn's tick did three things: the Date header (now made when read), a stop (the
        # event below) and ``limit_max_requests`` / ``callback_notify``, options the runner
        # never sets (refused here rather than silently ignored).
        if self.config.limit_max_requests is not None or self.config.callback_notify is not None:
            raise ValueError("limit_max_requests and callback_notify need uvicorn's tick")
        await self._exit_now.wait()


@dataclass
class _Serving:
    server: _Server
    task: asyncio.Task[None]
    sock: socket.socket

    @classmethod
    def open(cls, app: Any, sock: socket.socket, grace_s: float, **options: Any) -> _Serving:
        config = uvicorn.Config(
            app, **{**_UVICORN, "timeout_graceful_shutdown": grace_s, **options}
        )
        server = _Server(config)
        return cls(server, asyncio.create_task(server.serve(sockets=[sock])), sock)

    async def close(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await self.task
        self.sock.close()


@dataclass
class _State:
    started: bool = False
    stopping: bool = False


async def serve(
    plan: Plan, stop: asyncio.Event | None = None, *, started: Callable[[], None] | None = None
) -> int:
    """Run ``plan`` until it stops; the exit status. ``stop`` (tests running a service in a
    thread, where signals cannot be caught) asks for the graceful stop a signal would.
    ``started`` is called once the service has started and its listeners are open, before it
    reports ready (:func:`launch`: :func:`.gc_tuning.freeze_startup`)."""
    loop = asyncio.get_running_loop()
    stopping = stop or asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT) if _main_thread() else ()
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    state = _State()
    internal: _Serving | None = None
    try:
        if plan.internal_sock is not None:
            internal = _Serving.open(_probes(plan, state), plan.internal_sock, _INTERNAL_GRACE_S)
        elif plan.internal is not None:
            try:
                sock = listen(*plan.internal)
            except OSError as error:
                log.error("cannot listen on %s:%s (internal): %s", *plan.internal, error)
                return ExitCode.START_FAILED
            internal = _Serving.open(_probes(plan, state), sock, _INTERNAL_GRACE_S)
        return await _run(plan, stopping, state, started)
    finally:
        if internal is not None:
            await internal.close()
        for sig in signals:
            loop.remove_signal_handler(sig)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _probes(plan: Plan, state: _State) -> Probes:
    async def ready() -> bool:
        return state.started and not state.stopping and await plan.service.ready()

    return Probes(plan.name, plan.instance_id, ready, plan.service.render_metrics)


async def _run(
    plan: Plan, stopping: asyncio.Event, state: _State, started: Callable[[], None] | None
) -> int:
    service = plan.service
    stop_requested = asyncio.create_task(stopping.wait())
    watchers: set[asyncio.Task[Any]] = {stop_requested}
    try:
        code = await _start(plan, stop_requested)
        if code is not None:
            await _stop(plan)
            return code
        try:
            serving = [
                _Serving.open(lst.app, lst.open_socket(), plan.graceful_s, **lst.options)
                for lst in plan.listeners
            ]
        except OSError as error:
            log.error("%s cannot listen: %s", plan.name, error)
            await _stop(plan)
            return ExitCode.START_FAILED
        if started is not None:
            started()
        state.started = True
        log.info(
            "%s serving",
            plan.name,
            extra={"listeners": {lst.name: lst.port for lst in plan.listeners}},
        )
        failed = asyncio.create_task(service.failed.wait())
        watchers |= {failed, *(s.task for s in serving)}
        bus = service.bus
        closed = refused = None
        if bus is not None:
            closed = asyncio.create_task(bus.closed.wait())
            refused = asyncio.create_task(bus.refused.wait())
            watchers |= {closed, refused}
        await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        code = ExitCode.STOPPED if stopping.is_set() else ExitCode.FAILED
        if refused is not None and refused.done() and code is ExitCode.FAILED:
            code = ExitCode.REFUSED
            log.error(
                "%s: NATS refuses its credentials (its user removed or its password changed?); "
                "a configuration error, retrying cannot help: exiting",
                plan.name,
            )
        elif failed.done() and code is ExitCode.FAILED:
            # A service may say which failure it was (an edge supervisor repeats its worker's).
            code = ExitCode(getattr(service, "exit_code", ExitCode.FAILED))
        if code is ExitCode.FAILED:
            reason = "NATS connection closed for good" if closed and closed.done() else (
                "the service failed" if failed.done() else "a listener stopped"
            )  # fmt: skip
            log.error("%s: %s; exiting", plan.name, reason)
        state.stopping = True
        await asyncio.gather(*(s.close() for s in serving))
        await _stop(plan)
        log.info("%s stopped", plan.name, extra={"exit_code": int(code)})
        return code
    finally:
        for watcher in watchers:
            watcher.cancel()


async def _start(plan: Plan, stop_requested: asyncio.Task[Any]) -> ExitCode | None:
    """``service.start()``, unless a signal or the start-up time limit comes first (NATS
    connects retrying forever, so an unreachable NATS is caught here); None when it started."""
    starting = asyncio.create_task(plan.service.start())
    await asyncio.wait(
        {starting, stop_requested},
        timeout=plan.start_timeout_s,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        if stop_requested.done():
            log.info("%s stopped while starting", plan.name)
            return ExitCode.STOPPED
        log.error("%s could not start: not started after %.0f s", plan.name, plan.start_timeout_s)
        return ExitCode.START_FAILED
    error = starting.exception()
    if error is None:
        return None
    if isinstance(error, StartupRefused):
        log.error("%s refuses to start: %s", plan.name, error)
        return ExitCode.REFUSED
    log.error("%s could not start", plan.name, exc_info=error)
    return ExitCode.START_FAILED


async def _stop(plan: Plan) -> None:
    try:
        await plan.service.stop()
    except Exception:
        log.exception("%s failed while stopping", plan.name)
