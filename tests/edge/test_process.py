"""`python -m aiapi_edge` under the shared runner: its exit codes, and its operational surfaces
on the internal listener only (liveness, readiness, metrics), never on the public port."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiapi_cli.embedded import EmbeddedNats, nats_server_binary
from aiapi_cli.ports import free_port
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import ServiceProcess, internal_env

from .support import UPSTREAM_KEY

ARGV = [sys.executable, "-m", "aiapi_edge"]


def edge_env(nats_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_UPSTREAM_API_KEYS": UPSTREAM_KEY,
        "AIAPI_EDGE_PORT": str(free_port()),
        "AIAPI_EDGE_SPOOL_DIR": str(tmp_path / "spool"),
        "AIAPI_INSTANCE_ID": "edge-under-test",
        **extra,
    }
    return internal_env(env)[0]


def start(spawn: SpawnFn, env: dict[str, str]) -> ServiceProcess:
    ready = f"http://127.0.0.1:{env['AIAPI_INTERNAL_PORT']}/readyz"
    return spawn(ARGV, env=env, health_url=ready, name="edge")


def run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ARGV, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_invalid_settings_refuse_the_start_with_exit_2(tmp_path: Path) -> None:
    env = edge_env("nats://127.0.0.1:1", tmp_path, AIAPI_EDGE_MAX_BODY_BYTES="-1")
    done = run_to_exit(env)
    assert done.returncode == 2, done.stderr
    assert "AIAPI_EDGE_MAX_BODY_BYTES" in done.stderr


def test_unreachable_nats_at_start_fails_the_start_with_exit_3(tmp_path: Path) -> None:
    unreachable = f"nats://127.0.0.1:{free_port()}"
    done = run_to_exit(edge_env(unreachable, tmp_path, AIAPI_START_TIMEOUT_S="2"))
    assert done.returncode == 3, done.stderr
    assert "edge could not start" in done.stderr


async def test_metrics_and_health_are_internal_and_sigterm_exits_0(
    nats_server: EmbeddedNats, spawn: SpawnFn, tmp_path: Path
) -> None:
    env = edge_env(nats_server.url, tmp_path)
    edge = start(spawn, env)
    public = f"http://127.0.0.1:{env['AIAPI_EDGE_PORT']}"
    async with httpx.AsyncClient(timeout=10) as http:
        for path in ("/metrics", "/healthz", "/readyz", "/livez", "/api/proxy/metrics"):
            answer = await http.get(public + path)
            assert answer.status_code == 404, path
            body = answer.json()
            assert body["type"] == "error"  # the Anthropic error shape
            assert body["error"]["type"] == "not_found_error"
        metrics = await http.get(edge.probe_url("/metrics"))
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE aiapi_edge_requests_total counter" in metrics.text
        live = await http.get(edge.probe_url("/livez"))
        assert live.json() == {"status": "live", "service": "edge", "instance": "edge-under-test"}
        ready = await http.get(edge.probe_url("/readyz"))
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    assert edge.stop() == 0


async def test_liveness_and_readiness_hold_while_nats_is_down(
    nats_server: EmbeddedNats, spawn: SpawnFn, tmp_path: Path
) -> None:
    """The edge serves without NATS (the offline allowance, the spool): it stays in rotation."""
    edge = start(spawn, edge_env(nats_server.url, tmp_path))
    async with httpx.AsyncClient(timeout=10) as http:
        nats_server.stop()
        deadline = time.monotonic() + 20
        while "nats disconnected" not in edge.log_text():
            assert time.monotonic() < deadline, "the edge never saw NATS go"
            await _pause()
        assert (await http.get(edge.probe_url("/livez"))).status_code == 200
        assert (await http.get(edge.probe_url("/readyz"))).status_code == 200
        nats_server.start()
    assert edge.stop() == 0


_USERS = 'authorization {{ users = [{{ user: edge, password: "{password}" }}] }}\n'
FIRST_PASSWORD = "first-edge-password-0123456789"


@pytest.fixture
def revocable_nats(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """A nats-server with one user (the edge), run from a config file the test may rewrite and
    reload."""
    port = free_port()
    config = tmp_path / "nats.conf"
    base = f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{tmp_path}/js" }}\n'
    config.write_text(base + _USERS.format(password=FIRST_PASSWORD))
    server = subprocess.Popen([str(nats_server_binary()), "-c", str(config)])
    try:
        yield f"nats://127.0.0.1:{port}", config, server
    finally:
        server.terminate()
        server.wait(timeout=30)


async def test_nats_closing_for_good_exits_1(
    revocable_nats: tuple[str, Path, subprocess.Popen[bytes]], spawn: SpawnFn, tmp_path: Path
) -> None:
    url, config, server = revocable_nats
    login = {"AIAPI_NATS_USER": "edge", "AIAPI_NATS_PASSWORD": FIRST_PASSWORD}
    edge = start(spawn, edge_env(url, tmp_path, **login))
    # The operator rotates the edge's NATS password: the server drops the connection with an
    # authorization violation, which the client does not retry; the process must not limp on
    # (its supervisor restarts it with the new password).
    text = config.read_text().replace(FIRST_PASSWORD, "second-edge-password-9876543210")
    config.write_text(text)
    server.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while edge.running:
        assert time.monotonic() < deadline, "the edge kept running without NATS"
        await _pause()
    assert edge.stop() == 1
    assert "NATS connection closed for good" in edge.log_text()


async def _pause() -> None:
    await asyncio.sleep(0.1)
