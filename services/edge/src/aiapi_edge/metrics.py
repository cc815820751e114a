"""Prometheus metrics of one edge process, in a registry of its own (so tests may run several)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "aiapi_edge_requests",
            "Inference requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "aiapi_edge_request_seconds",
            "Time to the end of the response",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "aiapi_edge_upstream_errors",
            "Failed upstream attempts by error class",
            ["outcome"],
            registry=r,
        )
        # Upstream 4xx passed to the client: the customer's mistakes, and the only trace of an
        # upstream problem reported in a message alone (the 400 "credit balance is too low").
        self.upstream_client_errors = Counter(
            "aiapi_edge_upstream_client_errors",
            "Upstream error answers passed to the client, by status",
            ["status"],
            registry=r,
        )
        self.pool_health = Gauge(
            "aiapi_edge_upstream_keys", "Upstream keys by health", ["health"], registry=r
        )
        self.spool_depth = Gauge(
            "aiapi_edge_spool_depth", "Usage events spooled and not yet published", registry=r
        )
        self.spool_unwritten = Gauge(
            "aiapi_edge_spool_unwritten",
            "Usage events held in memory because the spool could not write them (alert on > 0)",
            registry=r,
        )
        self.admissions = Counter(
            "aiapi_edge_admissions", "Admission decisions", ["decision"], registry=r
        )
        self.usage_published = Counter(
            "aiapi_edge_usage_published", "Usage events acknowledged by JetStream", registry=r
        )

        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._decisions: dict[str, Any] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one inference request (the labelled children are looked up once)."""
        children = self._children.get((route, status))
        if children is None:
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def admitted(self, decision: str) -> None:
        """Count one admission decision (its labelled child looked up once: ``labels`` takes a
        lock and checks its arguments, a few microseconds on every request)."""
        child = self._decisions.get(decision)
        if child is None:
            child = self._decisions[decision] = self.admissions.labels(decision)
        child.inc()

    def render(self, refresh: Callable[[], None]) -> bytes:
        refresh()
        return bytes(generate_latest(self.registry))
