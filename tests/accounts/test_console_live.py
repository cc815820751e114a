"""The live view reads the edges' own metrics: two edge registries (the edge's ``Metrics``, as
each edge process renders it) served over HTTP, summed across edges, and rates taken between
two looks. An edge that does not answer is counted as missing, not as zero traffic."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
from collections.abc import Iterator

from aiapi_edge.metrics import Metrics
from aiapi_shared.bus import Bus

from tests.accounts.conftest import ADMIN, make_settings, run_app


@contextlib.contextmanager
def served(metrics: Metrics) -> Iterator[str]:
    """The edge's /metrics as its internal listener renders it, on a loopback port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.render(lambda: None)
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def edge(ok: int, errors: int, spool: int, healthy: int, cooling: int) -> Metrics:
    metrics = Metrics()
    for _ in range(ok):
        metrics.observe("anthropic", 200, 0.1)
    for _ in range(errors):
        metrics.observe("anthropic", 529, 0.1)
    metrics.upstream_errors.labels("overloaded").inc(errors)
    metrics.spool_depth.set(spool)
    metrics.pool_health.labels("healthy").set(healthy)
    metrics.pool_health.labels("cooling").set(cooling)
    return metrics


async def test_the_live_view_sums_the_edges_and_measures_rates(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    first, second = edge(10, 2, 3, 2, 0), edge(5, 0, 4, 1, 1)
    with served(first) as one, served(second) as two:
        unreachable = "http://127.0.0.1:9/metrics"
        settings = make_settings(
            database_url, nats_url, console_edge_metrics_urls=f"{one}, {two},{unreachable}"
        )
        async with run_app(settings, bus) as running:
            look = (await running.admin.get("/admin/v1/live", headers=ADMIN)).json()
            edges = look["edges"]
            assert (edges["configured"], edges["answered"]) == (3, 2)
            assert edges["requests_per_second"] is None  # one look: no rate yet
            assert edges["spool_depth"] == 7
            assert edges["upstream_keys"] == {"healthy": 3, "cooling": 1}
            assert look["billing"] is None  # billing does not run here

            for _ in range(30):
                first.observe("anthropic", 200, 0.1)
            for _ in range(10):
                second.observe("anthropic", 500, 0.1)
            second.upstream_errors.labels("server_error").inc(10)
            await asyncio.sleep(2.1)  # rates are measured over at least two seconds
            later = (await running.admin.get("/admin/v1/live", headers=ADMIN)).json()["edges"]
            seconds = later["sampled_over_s"]
            assert seconds >= 2
            rates = later["requests_per_second"]
            assert rates == {
                "2xx": round(30 / seconds, 3), "5xx": round(10 / seconds, 3),
            }  # fmt: skip
            assert later["status_share"] == {"2xx": 0.75, "5xx": 0.25}
            assert later["upstream_errors_per_second"]["server_error"] == round(10 / seconds, 3)
            assert later["upstream_errors_per_second"]["overloaded"] == 0
