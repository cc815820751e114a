"""The internal listener's routes, as a plain ASGI app: liveness, readiness and metrics.

``GET /livez`` answers 200 as long as the process answers HTTP: it never asks NATS or
PostgreSQL, so an orchestrator restarts a process that hangs, not one whose dependencies are
down. ``GET /readyz`` is 200 when the service can serve (started, not stopping, its own checks
pass), else 503. Both name the service and its instance id, so a caller that started the
process (``aiapi up``) can tell it is talking to its own instance. ``GET /metrics`` is the
Prometheus text exposition.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

log = logging.getLogger("aiapi.probes")

METRICS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_JSON = b"application/json"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Probes:
    """The ASGI app of one process's internal listener."""

    def __init__(
        self,
        service: str,
        instance_id: str,
        ready: Callable[[], Awaitable[bool]],
        metrics: Callable[[], bytes | Awaitable[bytes]],
    ) -> None:
        self._identity = {"service": service, "instance": instance_id}
        self._ready = ready
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, _error("invalid_request_error", f"{method} not allowed"))
        elif path == "/livez":
            await _send(send, 200, orjson.dumps({"status": "live", **self._identity}))
        elif path == "/readyz":
            ready = await self._readiness()
            body = {"status": "ready" if ready else "not ready", **self._identity}
            await _send(send, 200 if ready else 503, orjson.dumps(body))
        elif path == "/metrics":
            exposition = self._metrics()  # a supervisor gathers its workers' (awaitable)
            if inspect.isawaitable(exposition):
                exposition = await exposition
            await _send(send, 200, exposition, METRICS_CONTENT_TYPE)
        else:
            await _send(send, 404, _error("not_found_error", f"Not found: {method} {path}"))

    async def _readiness(self) -> bool:
        try:
            return await self._ready()
        except Exception:
            log.warning("readiness check failed", exc_info=True)
            return False


def _error(kind: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": kind, "message": message}})


async def _send(send: Send, status: int, body: bytes, content_type: bytes = _JSON) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
