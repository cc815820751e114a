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
SECOND_PASSWORD = "second-edge-password-9876543210"
REFUSED = "NATS refuses its credentials"


class RevocableNats:
    """A nats-server with one user (the edge), run from a config file the test may rewrite,
    then reload or restart on the same port."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"nats://127.0.0.1:{free_port()}"
        self.config = tmp_path / "nats.conf"
        self._base = f'listen: "{self.url[7:]}"\njetstream {{ store_dir: "{tmp_path}/js" }}\n'
        self.config.write_text(self._base + _USERS.format(password=FIRST_PASSWORD))
        self.server = subprocess.Popen([str(nats_server_binary()), "-c", str(self.config)])

    def set_password(self, password: str) -> None:
        self.config.write_text(self._base + _USERS.format(password=password))

    def reload(self) -> None:
        self.server.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        self.stop()
        self.server = subprocess.Popen([str(nats_server_binary()), "-c", str(self.config)])

    def stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


@pytest.fixture
def revocable_nats(tmp_path: Path) -> Iterator[RevocableNats]:
    server = RevocableNats(tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def wait_for_exit(edge: ServiceProcess) -> int | None:
    deadline = time.monotonic() + 30
    while edge.running:
        assert time.monotonic() < deadline, "the edge kept running, refused by NATS"
        await _pause()
    return edge.stop()


async def test_credentials_refused_while_connected_exit_2(
    revocable_nats: RevocableNats, spawn: SpawnFn, tmp_path: Path
) -> None:
    login = {"AIAPI_NATS_USER": "edge", "AIAPI_NATS_PASSWORD": FIRST_PASSWORD}
    edge = start(spawn, edge_env(revocable_nats.url, tmp_path, **login))
    # The operator rotates the edge's NATS password: the server drops the connection with an
    # authorization violation. A configuration error: the process exits with the status that
    # says so (its supervisor restarts it with the new password), never limps on.
    revocable_nats.set_password(SECOND_PASSWORD)
    revocable_nats.reload()
    assert await wait_for_exit(edge) == 2
    assert REFUSED in edge.log_text()


async def test_credentials_refused_on_reconnect_exit_2_rather_than_retry_forever(
    revocable_nats: RevocableNats, spawn: SpawnFn, tmp_path: Path
) -> None:
    login = {"AIAPI_NATS_USER": "edge", "AIAPI_NATS_PASSWORD": FIRST_PASSWORD}
    edge = start(spawn, edge_env(revocable_nats.url, tmp_path, **login))
    # NATS comes back without the edge's user (removed while it was down): each reconnect is
    # refused; retrying cannot help.
    revocable_nats.set_password(SECOND_PASSWORD)
    revocable_nats.restart()
    assert await wait_for_exit(edge) == 2
    assert REFUSED in edge.log_text()


def test_credentials_refused_at_start_exit_2(revocable_nats: RevocableNats, tmp_path: Path) -> None:
    login = {"AIAPI_NATS_USER": "edge", "AIAPI_NATS_PASSWORD": SECOND_PASSWORD}
    done = run_to_exit(edge_env(revocable_nats.url, tmp_path, **login))
    assert done.returncode == 2, done.stderr
    assert REFUSED in done.stderr


async def _pause() -> None:
    await asyncio.sleep(0.1)
