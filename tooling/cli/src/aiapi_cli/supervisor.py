"""Child processes of ``aiapi up``: started in order, health-checked, restarted if they die."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiapi_cli.stack import ServiceSpec

MAX_RESTARTS = 5


def child_env(spec: ServiceSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ours less what it must not hold, plus its own."""
    return {**{k: v for k, v in environ.items() if k not in spec.withheld}, **spec.env}


@dataclass
class Child:
    spec: ServiceSpec
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.spec.argv,
                env=child_env(self.spec, os.environ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """Ready, by the health answer of this very process (its instance id), not of whatever
        else listens on the port."""
        try:
            with urllib.request.urlopen(self.spec.health_url, timeout=1) as answer:  # noqa: S310
                return self.spec.accepts(answer.status, answer.read())
        except OSError:
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class Supervisor:
    def __init__(self, specs: tuple[ServiceSpec, ...], *, log_dir: Path) -> None:
        self.children = [Child(spec, log_dir / f"{spec.name}.log") for spec in specs]

    def start_all(self) -> None:
        for child in self.children:
            child.start()
            print(f"aiapi: started {child.spec.name} (pid {child.proc and child.proc.pid})")

    def wait_healthy(self, *, timeout_s: float, stopping: threading.Event) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.children)
        while pending and not stopping.is_set():
            if time.monotonic() > deadline:
                names = ", ".join(c.spec.name for c in pending)
                raise TimeoutError(f"not healthy after {timeout_s:.0f}s: {names}")
            for child in list(pending):
                if not child.alive:
                    raise RuntimeError(f"{child.spec.name} exited; see {child.log_path}")
                if child.healthy():
                    print(f"aiapi: {child.spec.name} ready", flush=True)
                    pending.remove(child)
            stopping.wait(0.1)

    def restart_dead(self) -> None:
        for child in self.children:
            if child.alive or child.proc is None:
                continue
            if child.restarts >= MAX_RESTARTS:
                continue
            child.restarts += 1
            print(f"aiapi: {child.spec.name} exited ({child.proc.returncode}); restarting")
            child.start()

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
