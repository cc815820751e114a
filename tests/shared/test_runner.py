"""The shared runner with a service of the test's own: start-up order, what ends a run, and the
exit status of each ending (processes of real services are in tests/*/test_process.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from aiapi_cli.ports import free_port
from aiapi_shared.bus import Bus
from aiapi_shared.lifecycle import ExitCode, StartupRefused
from aiapi_shared.runner import LISTEN_BACKLOG, Listener, Plan, _Server, listen, serve


class Recorder:
    """A service that records what the runner did with it."""

    bus: Bus | None = None

    def __init__(self, start_error: Exception | None = None) -> None:
        self.failed = asyncio.Event()
        self.start_error = start_error
        self.release_start = asyncio.Event()
        self.release_start.set()
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")
        await self.release_start.wait()
        if self.start_error is not None:
            raise self.start_error

    async def stop(self) -> None:
        self.calls.append("stop")

    async def ready(self) -> bool:
        return True

    def render_metrics(self) -> bytes:
        return b"recorder_up 1\n"


async def hello(scope: dict[str, object], receive: object, send: object) -> None:
    assert callable(send)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def plan(service: Recorder, public_port: int | None = None) -> tuple[Plan, int]:
    internal = free_port()
    listeners = (Listener("public", hello, "127.0.0.1", public_port),) if public_port else ()
    return Plan("recorder", service, listeners, ("127.0.0.1", internal), "rec-1"), internal


async def until(check: object, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            assert callable(check)
            with contextlib.suppress(httpx.TransportError):
                if await check():
                    return
            await asyncio.sleep(0.02)


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_live_while_starting_ready_after_and_a_stop_exits_0() -> None:
    service = Recorder()
    service.release_start.clear()
    public = free_port()
    running, internal = plan(service, public)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(running, stop))
    probes = f"http://127.0.0.1:{internal}"
    async with httpx.AsyncClient(timeout=5) as http:

        async def live() -> bool:
            return (await http.get(probes + "/livez")).status_code == 200

        await until(live)  # the internal listener is up before the service has started
        assert (await http.get(probes + "/readyz")).status_code == 503
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{public}/")  # no public listener yet
        service.release_start.set()

        async def ready() -> bool:
            return (await http.get(probes + "/readyz")).status_code == 200

        await until(ready)
        assert (await http.get(f"http://127.0.0.1:{public}/")).text == "hello"
        assert (await http.get(probes + "/metrics")).text == "recorder_up 1\n"
        assert (await http.get(probes + "/nothing")).status_code == 404
        stop.set()
        assert await task == ExitCode.STOPPED
    assert service.calls == ["start", "stop"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StartupRefused("AIAPI_X is wrong"), ExitCode.REFUSED),
        (OSError("no"), ExitCode.START_FAILED),
    ],
)
async def test_a_failed_start_stops_the_service_and_exits_with_its_code(
    error: Exception, code: ExitCode
) -> None:
    service = Recorder(start_error=error)
    running, _ = plan(service)
    assert await serve(running, asyncio.Event()) == code
    assert service.calls == ["start", "stop"]


async def test_a_start_that_does_not_finish_in_time_exits_3() -> None:
    service = Recorder()
    service.release_start.clear()
    running, _ = plan(service)
    slow = dataclasses.replace(running, start_timeout_s=0.5)
    assert await serve(slow, asyncio.Event()) == ExitCode.START_FAILED
    assert service.calls == ["start", "stop"]


async def test_the_service_failing_while_running_exits_1() -> None:
    service = Recorder()
    running, internal = plan(service, free_port())
    task = asyncio.create_task(serve(running, asyncio.Event()))
    async with httpx.AsyncClient(timeout=5) as http:

        async def ready() -> bool:
            return (await http.get(f"http://127.0.0.1:{internal}/readyz")).status_code == 200

        await until(ready)
    service.failed.set()
    assert await task == ExitCode.FAILED
    assert service.calls == ["start", "stop"]


async def test_a_taken_port_fails_the_start_with_exit_3() -> None:
    with taken_port() as port:
        service = Recorder()
        running, _ = plan(service, port)
        assert await serve(running, asyncio.Event()) == ExitCode.START_FAILED
        assert service.calls == ["start", "stop"]  # started, then stopped: no listener
        internal_taken = Plan("recorder", Recorder(), (), ("127.0.0.1", port), "rec-1")
        assert await serve(internal_taken, asyncio.Event()) == ExitCode.START_FAILED


async def test_an_idle_listener_never_ticks_and_a_stop_ends_it_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("no request is made")

    server = _Server(uvicorn.Config(app, lifespan="off"))
    ticks: list[int] = []
    real = server.on_tick

    async def counted(counter: int) -> bool:
        ticks.append(counter)
        return await real(counter)

    monkeypatch.setattr(server, "on_tick", counted)
    looping = asyncio.create_task(server.main_loop())
    await asyncio.sleep(1.3)  # uvicorn's own loop ticks every 0.1 s; a tick a second: twice
    assert ticks == []  # the Date header is made when a response reads it, not on a timer
    server.should_exit = True
    await asyncio.wait_for(looping, timeout=5)  # a stop does not wait for anything
    assert server.should_exit


async def test_each_response_has_the_date_of_its_own_second() -> None:
    public = free_port()
    running, _internal = plan(Recorder(), public)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(running, stop))
    url = f"http://127.0.0.1:{public}/"
    dates: list[datetime] = []
    async with httpx.AsyncClient(timeout=5) as http:

        async def answered() -> bool:
            return (await http.get(url)).status_code == 200

        await until(answered)
        for pause_s in (0.0, 1.1, 1.1):
            await asyncio.sleep(pause_s)  # the listener is idle meanwhile: nothing refreshes
            before = datetime.now(UTC).replace(microsecond=0)
            response = await http.get(url)
            after = datetime.now(UTC)
            date = parsedate_to_datetime(response.headers["date"])
            assert before <= date <= after  # this second's, not the one of the last request
            dates.append(date)
    stop.set()
    assert await task == ExitCode.STOPPED
    assert dates[0] < dates[1] < dates[2]


def kernel_somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


async def test_every_listener_asks_the_kernel_for_its_longest_listen_queue() -> None:
    """A burst of new connections beyond the listen queue loses SYNs (1 to 15 s each). uvicorn
    listens again on the socket it is given, with its own ``backlog`` (2,048 unless told): every
    listener asks ``LISTEN_BACKLOG``, which the kernel caps at ``net.core.somaxconn``."""
    sock = listen("127.0.0.1", 0)
    listener = Listener("public", hello, "127.0.0.1", sock.getsockname()[1], sock=sock)
    running = Plan("recorder", Recorder(), (listener,), ("127.0.0.1", free_port()), "rec-1")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(running, stop))
    url = f"http://127.0.0.1:{listener.port}/"
    async with httpx.AsyncClient(timeout=5) as http:

        async def answered() -> bool:
            return (await http.get(url)).status_code == 200

        await until(answered)
    # struct tcp_info: for a listening socket, tcpi_sacked (at byte 28) is its queue's length.
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    assert struct.unpack_from("I", info, 28)[0] == min(LISTEN_BACKLOG, kernel_somaxconn())
    stop.set()
    assert await task == ExitCode.STOPPED
