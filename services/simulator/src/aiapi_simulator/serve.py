"""Running the app under uvicorn (uvloop + httptools, no access log); used by the CLI and tests."""

from __future__ import annotations

import logging
import socket

import uvicorn

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


def build_server(config: SimulatorConfig, *, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for the simulator app (not started)."""
    _install_log_filter()
    uv_config = uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(uv_config)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), so callers know the port before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
