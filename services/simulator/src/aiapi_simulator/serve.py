"""Running the app under the shared runner (uvloop, httptools, no access log); used by the CLI
and by tests (in a thread). The simulator stands in for the upstream: it has no internal
listener, its ``/healthz`` stays on its one port."""

from __future__ import annotations

import asyncio
import logging
import socket

from aiapi_shared.lifecycle import ClosingBus
from aiapi_shared.runner import Listener, Plan

from aiapi_simulator.app import create_app
from aiapi_simulator.config import SimulatorConfig

_DROPPED_ON_PURPOSE = "ASGI callable returned without completing response."


class _DisconnectFaultFilter(logging.Filter):
    """A `disconnect` fault ends a response half-way on purpose; uvicorn would log that as an
    error on every injected fault, so that one message is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _DROPPED_ON_PURPOSE


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DisconnectFaultFilter) for f in logger.filters):
        logger.addFilter(_DisconnectFaultFilter())


class Upstream:
    """The simulator as the runner sees it: nothing to start, no NATS, always ready."""

    bus: ClosingBus | None = None

    def __init__(self) -> None:
        self.failed = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    def render_metrics(self) -> bytes:
        return b""


def plan(
    config: SimulatorConfig, *, sock: socket.socket | None = None, log_level: str = "INFO"
) -> Plan:
    """The simulator's process plan; ``sock`` (already listening) replaces binding the port."""
    _install_log_filter()
    listener = Listener(
        "public", create_app(config), config.host, config.port, {"timeout_keep_alive": 30}, sock
    )
    return Plan(
        name="simulator",
        service=Upstream(),
        listeners=(listener,),
        internal=None,
        instance_id="simulator",
        log_level=log_level,
        graceful_s=1.0,
    )
