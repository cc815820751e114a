"""Helpers for other packages' tests: a real simulator server on a free loopback port."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import uvloop
from aiapi_shared.runner import listen, serve

from aiapi_simulator.config import SimulatorConfig
from aiapi_simulator.serve import plan

_START_TIMEOUT = 10.0


def _wait_healthy(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the simulator server stopped while starting")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"the simulator at {base_url} did not become healthy")


@contextmanager
def running_simulator(config: SimulatorConfig | None = None) -> Iterator[str]:
    """Run the simulator (uvloop + httptools) in a background thread; yield its base URL.

    The host of `config` is used and its port is ignored: a free port is picked. The server
    stops (waiting at most about a second for open streams) when the block exits.

        with running_simulator(SimulatorConfig(latency_ms=5)) as base_url:
            client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test")
    """
    config = replace(config or SimulatorConfig(), port=0)
    sock = listen(config.host, 0)
    port = sock.getsockname()[1]
    running = plan(replace(config, port=port), sock=sock)
    loop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> int:
        stop = asyncio.Event()
        loop.append((asyncio.get_running_loop(), stop))
        return await serve(running, stop)

    thread = threading.Thread(
        target=uvloop.run, args=(main(),), name="aiapi-simulator", daemon=True
    )
    thread.start()
    host = f"[{config.host}]" if ":" in config.host else config.host
    base_url = f"http://{host}:{port}"
    try:
        _wait_healthy(base_url, thread)
        yield base_url
    finally:
        if loop and thread.is_alive():
            running_loop, stop = loop[0]
            running_loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        sock.close()
