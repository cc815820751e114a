"""The simulator's mutable state: armed faults, the prompt cache, recorded requests, counters.

One instance per app, created by `create_app`; never a module global.
"""

from __future__ import annotations

import base64
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiapi_simulator.cache import PromptCache
from aiapi_simulator.config import SimulatorConfig
from aiapi_simulator.faults import FaultQueue


@dataclass(slots=True)
class RecordedRequest:
    """A request exactly as it arrived (the body as raw bytes), with its request id, and, once a
    message was answered with 200, what the answer delivered (:meth:`serve`): the record a
    gateway's books are checked against."""

    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    id: str = ""
    served: dict[str, Any] | None = None

    def serve(
        self, *, stream: bool, usage: dict[str, Any] | None, complete: bool, client_gone: bool
    ) -> None:
        """``usage``: the last usage object the response carried in full (a stream cut after
        ``message_start`` carries that event's; none when no usage left); ``complete``: the
        whole response was handed to the server; ``client_gone``: the client left first."""
        self.served = {
            "stream": stream,
            "usage": usage,
            "complete": complete,
            "client_gone": client_gone,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "query": self.query.decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "body": base64.b64encode(self.body).decode(),
            "served": self.served,
        }


@dataclass(slots=True)
class Stats:
    """Counters for `GET /_sim/stats`."""

    requests: int = 0
    streams: int = 0
    active_streams: int = 0
    faults_injected: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def clear(self) -> None:
        """Zero the counters; `active_streams` is a gauge of what is running and stays."""
        self.requests = self.streams = self.faults_injected = 0
        self.by_route.clear()
        self.by_status.clear()
        self.input_tokens = self.output_tokens = 0
        self.cache_read_input_tokens = self.cache_creation_input_tokens = 0


class SimulatorState:
    def __init__(self, config: SimulatorConfig) -> None:
        self.faults = FaultQueue()
        self.cache = PromptCache()
        self.recorded: deque[RecordedRequest] = deque(maxlen=max(1, config.max_recorded_requests))
        self.stats = Stats()

    def stats_json(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "requests": stats.requests,
            "streams": stats.streams,
            "active_streams": stats.active_streams,
            "by_route": dict(stats.by_route),
            "by_status": {str(k): v for k, v in stats.by_status.items()},
            "faults_injected": stats.faults_injected,
            "faults_pending": len(self.faults.pending()),
            "tokens": {
                "input_tokens": stats.input_tokens,
                "output_tokens": stats.output_tokens,
                "cache_read_input_tokens": stats.cache_read_input_tokens,
                "cache_creation_input_tokens": stats.cache_creation_input_tokens,
            },
            "cache_entries": len(self.cache),
            "recorded_requests": len(self.recorded),
        }
