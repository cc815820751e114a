"""The JetStream bytes a request costs, measured through the real processes: the figure the sizing
rule in docs/operations.md ("JetStream sizing") is built on. If a change makes events bigger, this
fails and the documented figure (and the defaults derived from it) must be revisited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiapi_cli.credentials import NatsUsers
from aiapi_shared.jetstream_limits import BYTES_PER_REQUEST
from aiapi_testkit.plugin import admin_options

from .conftest import deploy
from .load import REQUESTS_PER_ACCOUNT, books_exact, open_customers, send, streams
from .support import Deployment, eventually

pytestmark = pytest.mark.slow

CUSTOMERS = 5  # 200 requests


@pytest.fixture
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """The deployment with an edge of one worker, said so: the BILLING figure was measured with
    one, and each worker holds leases of its own, so over these 200 requests (and e2e's 2-second
    lease windows) two workers publish more lease news per request (875 bytes against 802 with
    one; the budget is 850)."""
    servers = ("database_url", "strict_nats_server", "nats_login", "spawn")
    one = {"AIAPI_EDGE_WORKERS": "1"}
    with deploy(*map(request.getfixturevalue, servers), tmp_path, extra_env=one) as running:
        yield running


def test_a_request_costs_the_jetstream_bytes_the_sizing_rule_assumes(
    deployment: Deployment, nats_users: NatsUsers
) -> None:
    url = deployment.env["AIAPI_NATS_URL"]
    nats_admin = admin_options(nats_users)
    with deployment.admin() as admin:
        customers = open_customers(admin, CUSTOMERS, "20.00")
        before = streams(url, nats_admin)
        send([deployment.edge_url], customers, REQUESTS_PER_ACCOUNT)
        requests = sum(c.answered for c in customers)
        assert requests == CUSTOMERS * REQUESTS_PER_ACCOUNT, [c.failed for c in customers]
        eventually(lambda: books_exact(admin, customers), timeout_s=30)
    after = streams(url, nats_admin)
    grown = {
        name: (
            after[name][0] - before.get(name, (0, 0))[0],
            after[name][1] - before.get(name, (0, 0))[1],
        )
        for name in after
    }
    per_request = {name: round(b / requests) for name, (b, _) in grown.items()}
    print(
        "JetStream bytes per request:",
        per_request,
        "messages:",
        {k: m for k, (_, m) in grown.items()},
    )
    assert grown["USAGE"][1] == requests  # one usage event per request
    for stream, budget in BYTES_PER_REQUEST.items():
        assert per_request.get(stream, 0) <= budget, (stream, per_request)
