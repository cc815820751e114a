"""A service's own process runs with the collector set for a server (aiapi_shared.gc_tuning):
once it has started, its start-up objects are frozen out of every later collection and the
young generation's threshold is the server's. A service run inside another process (the tests'
threads) leaves that process's collector alone."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from pathlib import Path

import httpx
from aiapi_cli.ports import free_port
from aiapi_shared.gc_tuning import YOUNG_OBJECTS
from aiapi_shared.lifecycle import ExitCode
from aiapi_shared.runner import serve

from .test_runner import Recorder, plan, until

# A service whose metrics say what its process's collector looks like, run through launch().
SERVICE = """
import asyncio, gc, sys
from aiapi_shared.runner import Plan, launch

class Probe:
    bus = None

    def __init__(self) -> None:
        self.failed = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def ready(self) -> bool:
        return True

    def render_metrics(self) -> bytes:
        return f"frozen {gc.get_freeze_count()}\\nyoung {gc.get_threshold()[0]}\\n".encode()

launch(lambda: Plan("gc-probe", Probe(), (), ("127.0.0.1", int(sys.argv[1])), "gc-1"))
"""


async def test_a_launched_service_freezes_its_start_up_and_collects_young_objects_less_often(
    tmp_path: Path,
) -> None:
    script = tmp_path / "gc_probe.py"
    script.write_text(SERVICE)
    internal = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), str(internal))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{internal}", timeout=5) as http:

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await until(ready, timeout_s=30)
            figures = dict(line.split() for line in (await http.get("/metrics")).text.splitlines())
        # Everything start-up made (modules, pydantic, uvicorn: tens of thousands of objects).
        assert int(figures["frozen"]) > 10_000
        assert int(figures["young"]) == YOUNG_OBJECTS
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == ExitCode.STOPPED
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_service_served_in_another_process_leaves_its_collector_alone() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    running, internal = plan(Recorder())
    stop = asyncio.Event()
    task = asyncio.create_task(serve(running, stop))
    async with httpx.AsyncClient(timeout=5) as http:

        async def ready() -> bool:
            return (await http.get(f"http://127.0.0.1:{internal}/readyz")).status_code == 200

        await until(ready)
    stop.set()
    assert await task == ExitCode.STOPPED
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
