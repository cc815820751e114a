"""The edge on every core: a supervisor process and its worker processes (I/O: processes, sockets).

Why a pre-fork supervisor and not ``SO_REUSEPORT``: with ``SO_REUSEPORT`` each worker binds a
socket of its own and the kernel hashes each new connection to one of them; connections waiting
in a worker's queue when it dies are reset, and while a worker restarts its share of new
connections is refused. Here the supervisor binds the public port once and every worker accepts
from that one socket (inherited as a file descriptor), so a dead worker loses no queued
connection: the others accept it. The supervisor runs under the shared runner as a service of
its own: ``start`` starts the workers and waits until each has started; a worker that dies is
started again with the same index (so it claims the same spool and publishes what its
predecessor left, :mod:`.spool_claim`), at once after a long run, backing off while it keeps
dying young; a worker that exits by its runner's choice (1: NATS closed for good, 2: refused
configuration, 3: failed start) stops the edge with the same status, as one process would; SIGTERM is forwarded to every worker for a graceful drain. Its internal listener
answers for the whole edge: ``/readyz`` is 200 when every worker answers its own ``/readyz`` with
200, ``/metrics`` is every worker's metrics labelled ``worker`` (:mod:`.metrics_merge`) plus the
supervisor's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from aiapi_shared.lifecycle import ExitCode, StartupRefused
from aiapi_shared.runner import listen
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from aiapi_edge.metrics_merge import merge
from aiapi_edge.settings import EdgeSettings
from aiapi_edge.worker_plan import restart_delay

log = logging.getLogger("aiapi.edge.supervisor")

_PROBE_TIMEOUT_S = 2.0
_FIRST_RESTART_S = 0.5
_MAX_RESTART_S = 30.0
_BIND_RETRY_S = 0.2
# What a worker's runner exits with by choice; any other end (a signal: SIGKILL, the OOM killer,
# a crash) is a death the supervisor repairs by starting the worker again.
_EXITS_THE_EDGE = frozenset({ExitCode.FAILED, ExitCode.REFUSED, ExitCode.START_FAILED})


@dataclass
class _Worker:
    index: int
    internal: socket.socket  # bound by the supervisor, kept across restarts: a stable port
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay_s: float = 0.0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.internal.getsockname()[1])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class WorkerSupervisor:
    """The runner's service for an edge of ``count`` workers."""

    def __init__(self, settings: EdgeSettings, count: int, instance_id: str) -> None:
        self.settings = settings
        self.count = count
        self.instance_id = instance_id
        # One edge id for every worker, chosen once: each worker reports as ``<id>-w<i>``, so an
        # operator sees which workers are one edge, and a worker started again keeps its name.
        self.edge_id = settings.edge_id or f"edge-{secrets.token_hex(4)}"
        self.failed = asyncio.Event()
        self.exit_code = ExitCode.FAILED  # the runner's exit status once ``failed`` is set
        self._stopping = False
        self._public: socket.socket | None = None
        self._workers: list[_Worker] = []
        self.registry = CollectorRegistry(auto_describe=True)
        self._configured = Gauge(
            "aiapi_edge_workers", "Worker processes this edge runs", registry=self.registry
        )
        self._running = Gauge(
            "aiapi_edge_workers_running", "Worker processes running now", registry=self.registry
        )
        self.restarts = Counter(
            "aiapi_edge_worker_restarts",
            "Workers started again after they died",
            registry=self.registry,
        )
        self._configured.set(count)

    @property
    def bus(self) -> None:
        return None  # each worker watches its own NATS connection

    # -- start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self._public = await _bind(s.host, s.edge_port, patience_s=self._stop_budget_s())
        self._workers = [_Worker(i, listen("127.0.0.1", 0)) for i in range(self.count)]
        started = await asyncio.gather(*(self._launch(w) for w in self._workers))
        for worker, ok in zip(self._workers, started, strict=True):
            if not ok:
                assert worker.process is not None
                code = await _exited(worker.process)
                if code == ExitCode.REFUSED:
                    raise StartupRefused(f"edge worker {worker.index} refused to start")
                raise RuntimeError(f"edge worker {worker.index} exited with {code} while starting")
        for worker in self._workers:
            worker.watcher = asyncio.ensure_future(self._watch(worker))
        log.info(
            "edge workers started",
            extra={
                "workers": self.count,
                "pids": [w.process.pid for w in self._workers if w.process],
            },
        )

    async def stop(self) -> None:
        """SIGTERM to every worker (each drains as a single edge would), SIGKILL to any still
        running after the longest a drain may take."""
        self._stopping = True
        watchers = [w.watcher for w in self._workers if w.watcher is not None]
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        running = [w.process for w in self._workers if w.running and w.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if self._public is not None:
            self._public.close()  # the workers hold the port until they have drained
        if running:
            _, late = await asyncio.wait(
                [asyncio.ensure_future(_exited(p)) for p in running], timeout=self._stop_budget_s()
            )
            for process in running:
                if process.poll() is None:
                    log.error(
                        "edge worker did not stop in time; killed", extra={"pid": process.pid}
                    )
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        for worker in self._workers:
            worker.internal.close()

    def _stop_budget_s(self) -> float:
        s = self.settings
        return s.edge_graceful_timeout_s + s.edge_spool_drain_s + 5.0

    # -- the workers ---------------------------------------------------------------------------

    async def _launch(self, worker: _Worker) -> bool:
        """Start ``worker``'s process; whether it reported "started" (False: it exited first)."""
        assert self._public is not None
        read_end, write_end = os.pipe()
        public_fd, internal_fd = self._public.fileno(), worker.internal.fileno()
        env = {
            **os.environ,
            "AIAPI_EDGE_WORKER_INDEX": str(worker.index),
            "AIAPI_EDGE_WORKER_COUNT": str(self.count),
            "AIAPI_EDGE_LISTEN_FD": str(public_fd),
            "AIAPI_EDGE_INTERNAL_FD": str(internal_fd),
            "AIAPI_EDGE_STARTED_FD": str(write_end),
            "AIAPI_EDGE_SUPERVISOR_PID": str(os.getpid()),
            "AIAPI_INSTANCE_ID": f"{self.instance_id}-w{worker.index}",
            "AIAPI_EDGE_ID": self.edge_id,
        }
        try:
            # subprocess, not the loop's: it closes every descriptor but these three (the
            # runner's sockets are inheritable; a worker holding the supervisor's internal port
            # would keep it from a supervisor started after this one died).
            worker.process = subprocess.Popen(  # noqa: ASYNC220 (a fork and exec: milliseconds)
                [sys.executable, "-m", "aiapi_edge"],
                env=env,
                pass_fds=(public_fd, internal_fd, write_end),
                close_fds=True,
            )
        finally:
            os.close(write_end)  # the child's copy is the only one: its exit means EOF
        worker.started_at = time.monotonic()
        self._running.set(sum(w.running for w in self._workers))
        try:
            await _readable(read_end)
            report = os.read(read_end, 1)
        finally:
            os.close(read_end)
        return report == b"s"

    async def _watch(self, worker: _Worker) -> None:
        """Start ``worker`` again whenever it dies, until the edge stops."""
        while not self._stopping:
            assert worker.process is not None
            code = await _exited(worker.process)
            self._running.set(sum(w.running for w in self._workers))
            if self._stopping:
                return
            if code in _EXITS_THE_EDGE:
                # The worker's runner chose to exit (NATS closed for good, its configuration
                # refused): the edge exits the same way, as a single process would, and its
                # orchestrator decides what next.
                log.error(
                    "edge worker exited on its own; the edge stops",
                    extra={"worker": worker.index, "exit_code": code},
                )
                self.exit_code = ExitCode(code)
                self.failed.set()
                return
            ran_s = time.monotonic() - worker.started_at
            worker.delay_s = restart_delay(
                worker.delay_s, ran_s, first_s=_FIRST_RESTART_S, max_s=_MAX_RESTART_S
            )
            log.error(
                "edge worker died; starting it again",
                extra={
                    "worker": worker.index,
                    "exit_code": code,
                    "ran_s": round(ran_s, 1),
                    "restart_in_s": worker.delay_s,
                },
            )
            await asyncio.sleep(worker.delay_s)
            if self._stopping:
                return
            self.restarts.inc()
            await self._launch(worker)

    # -- what the internal listener reports --------------------------------------------------

    async def ready(self) -> bool:
        """Every worker running and answering its own ``/readyz`` with 200."""
        if not self._workers or not all(w.running for w in self._workers):
            return False
        answers = await asyncio.gather(
            *(_get(w.port, "/readyz") for w in self._workers), return_exceptions=True
        )
        return all(not isinstance(a, BaseException) and a[0] == 200 for a in answers)

    async def render_metrics(self) -> bytes:
        answers = await asyncio.gather(
            *(_get(w.port, "/metrics") for w in self._workers if w.running),
            return_exceptions=True,
        )
        running = [w for w in self._workers if w.running]
        parts = [
            (str(w.index), a[1].decode())
            for w, a in zip(running, answers, strict=True)
            if not isinstance(a, BaseException) and a[0] == 200
        ]
        self._running.set(len(running))
        return generate_latest(self.registry) + merge(parts).encode()


async def _bind(host: str, port: int, *, patience_s: float) -> socket.socket:
    """The public socket; a port still held (by the workers of a supervisor that just died,
    draining) is tried again for up to ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return listen(host, port)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(_BIND_RETRY_S)


async def _readable(fd: int) -> None:
    """Until ``fd`` can be read without blocking (data, or its other end closed)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _exited(process: subprocess.Popen[bytes]) -> int:
    """``process``'s exit status, once it exits (a pidfd: no thread, no SIGCHLD handler)."""
    if process.poll() is None:
        fd = os.pidfd_open(process.pid)
        try:
            await _readable(fd)
        finally:
            os.close(fd)
    return process.wait()


async def _get(port: int, path: str) -> tuple[int, bytes]:
    """A GET to a worker's internal listener on loopback: its status and body."""
    async with asyncio.timeout(_PROBE_TIMEOUT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode()
            )
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
