"""The workers' pure parts: how many, which spools each adopts, restart pacing, merged metrics."""

from __future__ import annotations

import pytest
from aiapi_edge.metrics import Metrics
from aiapi_edge.metrics_merge import labelled, merge
from aiapi_edge.settings import EdgeSettings
from aiapi_edge.worker_plan import (
    LEGACY,
    cpu_quota,
    orphans_of,
    restart_delay,
    worker_count,
    worker_index,
)
from hypothesis import given
from hypothesis import strategies as st


def test_worker_count_is_the_setting_or_the_cpus_within_the_cgroup_limit() -> None:
    assert worker_count(3, affinity=8, quota=None) == 3
    assert worker_count(0, affinity=8, quota=None) == 8
    assert worker_count(0, affinity=8, quota=1.5) == 2  # a limit of 1.5 CPUs: 2 workers
    assert worker_count(0, affinity=2, quota=16.0) == 2
    assert worker_count(0, affinity=0, quota=0.1) == 1


def test_a_bare_edge_runs_a_worker_per_cpu_by_default() -> None:
    # No AIAPI_EDGE_WORKERS: as `aiapi up`, compose and Kubernetes size it, one per CPU it may use.
    default = EdgeSettings.model_fields["edge_workers"].default
    assert default == 0
    assert worker_count(default, affinity=6, quota=None) == 6
    assert worker_count(default, affinity=6, quota=2.0) == 2


def test_cpu_max_lines() -> None:
    assert cpu_quota("150000 100000\n") == 1.5
    assert cpu_quota("max 100000") is None
    assert cpu_quota("") is None
    assert cpu_quota("x 100000") is None


def test_worker_directory_names() -> None:
    assert worker_index("worker-0") == 0
    assert worker_index("worker-12") == 12
    for name in ("worker-", "worker-01", "worker--1", "worker-1x", "mirrors.json", "w-1"):
        assert worker_index(name) is None


@given(
    count=st.integers(1, 16),
    present=st.sets(st.integers(-1, 40)),
)
def test_every_orphan_is_adopted_by_exactly_one_live_worker(count: int, present: set[int]) -> None:
    adopted = [orphans_of(i, count, present) for i in range(count)]
    flat = [o for orphans in adopted for o in orphans]
    expected = {o for o in present if o == LEGACY or o >= count}
    assert sorted(flat) == sorted(expected)  # each once
    assert len(flat) == len(set(flat))
    if LEGACY in present:
        assert LEGACY in adopted[0]


def test_a_worker_that_keeps_dying_young_waits_longer_each_time() -> None:
    delays = [0.0]
    for _ in range(8):
        delays.append(restart_delay(delays[-1], ran_s=1.0, first_s=0.5, max_s=30.0))
    assert delays[1:] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # after a long run, at once again
    assert restart_delay(30.0, ran_s=300.0, first_s=0.5, max_s=30.0) == 0.5


def test_labelled_samples() -> None:
    assert labelled('a_total{x="1"} 3.0', "worker", "0") == 'a_total{worker="0",x="1"} 3.0'
    assert labelled("a_total 3.0", "worker", "1") == 'a_total{worker="1"} 3.0'
    assert labelled("a_total{} 3.0", "worker", "1") == 'a_total{worker="1"} 3.0'


def _worker(requests: int, depth: int) -> str:
    metrics = Metrics()
    for _ in range(requests):
        metrics.requests.labels("messages", "200").inc()
        metrics.latency.labels("messages").observe(0.02)
    metrics.spool_depth.set(depth)
    return metrics.render(lambda: None).decode()


def test_merged_counters_and_histograms_are_summed_and_gauges_labelled() -> None:
    text = merge([("0", _worker(3, 5)), ("1", _worker(4, 7))])
    lines = text.splitlines()
    assert 'aiapi_edge_requests_total{route="messages",status="200"} 7.0' in lines
    assert 'aiapi_edge_request_seconds_count{route="messages"} 7.0' in lines
    assert 'aiapi_edge_request_seconds_bucket{le="0.025",route="messages"} 7.0' in lines
    assert 'aiapi_edge_spool_depth{worker="0"} 5.0' in lines
    assert 'aiapi_edge_spool_depth{worker="1"} 7.0' in lines
    assert not any("_created" in line for line in lines)
    # each family's header once, before its samples
    assert lines.count("# TYPE aiapi_edge_requests_total counter") == 1
    requests_at = lines.index("# TYPE aiapi_edge_requests_total counter")
    assert lines[requests_at + 1].startswith("aiapi_edge_requests_total")


@pytest.mark.parametrize("texts", [[], [("0", "")]])
def test_nothing_merged_is_empty(texts: list[tuple[str, str]]) -> None:
    assert merge(texts) == ""
