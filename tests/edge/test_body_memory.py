"""The edge as a real process under 40 concurrent 30 MiB uploads without a key: the key is
checked from the head, the bodies are never gathered, and the process's peak resident memory
stays within MEMORY_BOUND of what it used idle (docs/edge.md, "Bounds")."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_cli.ports import free_port
from aiapi_testkit.plugin import SpawnFn

from .raw_http import connect, head, read_answer, send_raw
from .support import key_record, make_key, put_key
from .test_durability import edge_env, ready_url

UPLOADS = 40
UPLOAD_BYTES = 30 * 1024 * 1024
MEMORY_BOUND = 64 * 1024 * 1024  # over the idle resident size; the bodies alone are 1.2 GiB


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def upload_without_key(port: int, path: str) -> int:
    """Send a head and the whole 30 MiB body, then read the answer."""
    reader, writer = await connect(port)
    try:
        writer.write(head("POST", path, length=UPLOAD_BYTES))
        block = b"{" * (1024 * 1024)
        for _ in range(UPLOAD_BYTES // len(block)):
            writer.write(block)
            await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), 120)
        return answer.status
    finally:
        writer.close()


@pytest.mark.slow
async def test_forty_30_mib_uploads_without_a_key_cost_the_edge_no_memory(
    bus: Any, nats_server: EmbeddedNats, sim_url: str, spawn: SpawnFn, tmp_path: Path
) -> None:
    key = make_key()
    await put_key(bus, key, key_record("acct_memory"))
    port = free_port()
    environment = edge_env(nats_server.url, sim_url, tmp_path / "spool", port)
    edge = spawn(
        [sys.executable, "-m", "aiapi_edge"],
        env=environment,
        health_url=ready_url(environment),
        name="edge",
    )
    assert edge.pid is not None
    # A valid key with a declared 33 MiB body: 413 from the head alone (nothing else is sent).
    answer = await send_raw(port, head("POST", "/v1/messages", key=key, length=33 << 20))
    assert answer.status == 413
    assert answer.json()["error"]["type"] == "request_too_large"
    idle = memory_kib(edge.pid, "VmRSS") * 1024

    paths = ("/v1/messages", "/v1/chat/completions", "/v1/messages/count_tokens")
    statuses = await asyncio.gather(
        *(upload_without_key(port, paths[i % len(paths)]) for i in range(UPLOADS))
    )

    assert statuses == [401] * UPLOADS
    peak = memory_kib(edge.pid, "VmHWM") * 1024
    assert peak - idle <= MEMORY_BOUND, f"peak {peak >> 20} MiB, idle {idle >> 20} MiB"
    # Still serving.
    answer = await send_raw(port, head("GET", "/v1/models", key=key))
    assert answer.status == 200
