"""Run an aiapi service (or any program) as a subprocess a test can kill and restart.

A service's health is on its internal listener (docs/operations.md): :func:`internal_env` gives
a service environment a free ``AIAPI_INTERNAL_PORT`` and the readiness URL to wait on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from aiapi_cli.ports import free_port


def internal_env(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """``env`` with a free internal port (unless it names one), and that listener's readiness
    URL (``/readyz``: started and able to serve)."""
    port = env.get("AIAPI_INTERNAL_PORT") or str(free_port())
    return {**env, "AIAPI_INTERNAL_PORT": port}, f"http://127.0.0.1:{port}/readyz"


class ServiceProcess:
    """A child process with a health URL; its output goes to ``log_path`` for later inspection."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        health_url: str | None,
        log_path: Path,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.health_url = health_url
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def probe_url(self, path: str) -> str:
        """``path`` (``/livez``, ``/metrics``) on the listener of the health URL."""
        assert self.health_url is not None
        parts = urlsplit(self.health_url)
        return f"{parts.scheme}://{parts.netloc}{path}"

    def listening_ports(self) -> set[int]:
        """The TCP ports the process listens on (Linux: its sockets matched in /proc)."""
        assert self.pid is not None
        sockets = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    sockets.add(target[len("socket:[") : -1])
        ports = set()
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in sockets:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, timeout_s: float = 30.0, wait: bool = True) -> ServiceProcess:
        """Start the process and (unless ``wait`` is False: then :meth:`wait_healthy` later,
        to start several side by side) wait until its health URL answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait and self.health_url is not None:
            self.wait_healthy(timeout_s=timeout_s)
        return self

    def wait_healthy(self, *, timeout_s: float) -> None:
        assert self.health_url is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited early:\n{self.log_text()[-4000:]}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.health_url} not healthy:\n{self.log_text()[-4000:]}")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout_s``; returns the exit code."""
        return self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> int | None:
        """SIGKILL: the crash a test wants to survive."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout_s: float) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def stop_all(processes: Iterable[ServiceProcess], timeout_s: float = 15.0) -> None:
    """Stop every process side by side (each as :meth:`ServiceProcess.stop`): a service's
    graceful stop may take seconds (its loops end at their next wake), and a deployment's
    teardown should take the longest of them, not their sum."""
    running = list(processes)
    if not running:
        return
    with ThreadPoolExecutor(len(running), thread_name_prefix="stop") as pool:
        for stopped in [pool.submit(proc.stop, timeout_s) for proc in running]:
            stopped.result()
