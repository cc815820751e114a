"""The live view's arithmetic (pure): the edges' Prometheus counters summed, and rates from two
samples taken some seconds apart.

Sources, and why: what happens at the edge (requests by status, upstream errors by class, the
upstream keys' health, the spool) is only known to each edge process, on its internal
``/metrics``; the console reads the edges listed in ``AIAPI_CONSOLE_EDGE_METRICS_URLS``. What
billing settled in the last minute and its backlog in the USAGE stream come from billing
(``console_api.LIVE_SUBJECT``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

_REQUESTS = "aiapi_edge_requests"
_UPSTREAM_ERRORS = "aiapi_edge_upstream_errors"
_KEYS = "aiapi_edge_upstream_keys"
_SPOOL = "aiapi_edge_spool_depth"
_UNWRITTEN = "aiapi_edge_spool_unwritten"


@dataclass(frozen=True)
class EdgeSample:
    """The counters and gauges of the edges that answered, summed."""

    requests_by_class: dict[str, float] = field(default_factory=dict)  # "2xx": total so far
    upstream_errors: dict[str, float] = field(default_factory=dict)  # by outcome, so far
    keys_by_health: dict[str, float] = field(default_factory=dict)
    spool_depth: float = 0.0
    spool_unwritten: float = 0.0


def parse_edges(texts: Iterable[str]) -> EdgeSample:
    """Sum the edges' exposition texts (a text that does not parse counts as nothing)."""
    by_class: dict[str, float] = {}
    errors: dict[str, float] = {}
    keys: dict[str, float] = {}
    spool = unwritten = 0.0
    for text in texts:
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError:
            continue
        for family in families:
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if name == _REQUESTS + "_total":
                    status_class = labels.get("status", "?")[:1] + "xx"
                    by_class[status_class] = by_class.get(status_class, 0.0) + value
                elif name == _UPSTREAM_ERRORS + "_total":
                    outcome = labels.get("outcome", "?")
                    errors[outcome] = errors.get(outcome, 0.0) + value
                elif name == _KEYS:
                    health = labels.get("health", "?")
                    keys[health] = keys.get(health, 0.0) + value
                elif name == _SPOOL:
                    spool += value
                elif name == _UNWRITTEN:
                    unwritten += value
    return EdgeSample(by_class, errors, keys, spool, unwritten)


def per_second(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Each counter's rate between two samples; a counter that went down (an edge restarted)
    counts from zero."""
    if seconds <= 0:
        return {}
    rates = {}
    for name, value in after.items():
        previous = before.get(name, 0.0)
        delta = value - previous if value >= previous else value
        rates[name] = round(delta / seconds, 3)
    return rates


def error_share(rates: dict[str, float]) -> dict[str, float]:
    """Each status class's share of the requests per second (0..1)."""
    total = sum(rates.values())
    return {name: round(rate / total, 4) for name, rate in rates.items()} if total else {}
