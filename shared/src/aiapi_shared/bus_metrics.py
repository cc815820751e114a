"""The consumers' alert counters, in a Prometheus registry of the bus's own (one per process, so
that tests may run several services in one interpreter). A service serves ``render()`` beside
its own metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Handler failures that were not an announced outage (RetryableError): a bug or a state
        # the handler does not expect. The message is redelivered with backoff; alert on a rate.
        self.retries = Counter(
            "aiapi_consumer_retries",
            "Messages redelivered after their handler failed unexpectedly",
            ["consumer"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "aiapi_consumer_dead_lettered",
            "Undecodable messages set aside in the DEADLETTER stream",
            ["consumer"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
