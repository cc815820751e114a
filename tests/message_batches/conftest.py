"""Fixtures of the Message Batches tests: the real billing service (PostgreSQL, NATS) and real
edges (threads) in front of the simulator, whose batches end a fraction of a second after
they are created (a test may slow them down through ``/_sim/batches``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import pytest
from aiapi_billing.service import Service
from aiapi_shared.billing_api import ACCOUNT_SUBJECT, AccountBalanceReply, AccountQuery
from aiapi_shared.bus import Bus
from aiapi_simulator import SimulatorConfig
from aiapi_simulator.testing import running_simulator

from tests.billing import conftest as billing_fixtures
from tests.edge.support import EdgeThread, edge_settings, key_record, make_key, put_key, sim_post

# The real billing service (and the auditor's invariants after every test) as billing's own
# tests have it.
migrated = billing_fixtures.migrated
billing = billing_fixtures.billing
credit = billing_fixtures.credit


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(batch_processing_s=0.3)) as url:
        yield url


@dataclass
class Customer:
    account_id: str
    key: str


@dataclass
class BatchEnv:
    bus: Bus
    sim_url: str
    nats_url: str
    tmp_path: Path
    edges: list[EdgeThread] = field(default_factory=list)
    clients: list[anthropic.AsyncAnthropic] = field(default_factory=list)

    def start_edge(self, upstream_url: str | None = None, **settings: Any) -> EdgeThread:
        spool = self.tmp_path / f"spool-{len(self.edges)}"
        upstream = upstream_url or self.sim_url
        values: dict[str, Any] = {
            "edge_batch_tick_s": 0.1,
            "edge_batch_poll_s": 0.1,
            "edge_batch_lease_s": 5.0,
            **settings,
        }
        edge = EdgeThread(edge_settings(self.nats_url, upstream, spool, **values)).start()
        self.edges.append(edge)
        return edge

    async def customer(self, credit_usd: str) -> Customer:
        key = make_key()
        account_id = "acct_" + make_key()[-10:]
        await put_key(self.bus, key, key_record(account_id))
        if credit_usd != "0":
            await credit(self.bus, account_id, credit_usd)
        return Customer(account_id, key)

    def sdk(self, edge: EdgeThread, key: str) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(
            base_url=edge.base_url + "/api/proxy", api_key=key, max_retries=0
        )
        self.clients.append(client)
        return client

    async def account(self, account_id: str) -> AccountBalanceReply:
        return await self.bus.call(
            ACCOUNT_SUBJECT,
            AccountQuery(account_id=account_id),
            AccountBalanceReply,
            timeout_s=5.0,
        )

    def slow_batches(self, seconds: float) -> None:
        sim_post(self.sim_url, "/_sim/batches", {"processing_s": seconds})


@pytest.fixture
async def batch_env(
    bus: Bus, nats_url: str, sim_url: str, billing: Service, tmp_path: Path
) -> AsyncIterator[BatchEnv]:
    sim_post(sim_url, "/_sim/reset")
    env = BatchEnv(bus, sim_url, nats_url, tmp_path)
    try:
        yield env
    finally:
        for client in env.clients:
            await client.close()
        for edge in env.edges:
            edge.stop()
