"""Fixtures of the edge tests: one simulator per session, an edge per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from aiapi_shared.admission import ADMIT_SUBJECT
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import Catalogue
from aiapi_simulator import SimulatorConfig
from aiapi_simulator.testing import running_simulator

from .support import Billing, EdgeThread, edge_settings, key_record, make_key, put_key, sim_post


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(ping_interval=0.2)) as url:
        yield url


@dataclass
class EdgeEnv:
    edge: EdgeThread
    bus: Bus
    billing: Billing
    key: str
    account_id: str
    sim_url: str
    tmp_path: Path
    clients: list[Any] = field(default_factory=list)

    def anthropic(self, key: str | None = None) -> anthropic.AsyncAnthropic:
        sdk = anthropic.AsyncAnthropic(
            base_url=self.proxy_url, api_key=key or self.key, max_retries=0
        )
        self.clients.append(sdk)
        return sdk

    def openai(self, key: str | None = None, prefix: str = "/api/proxy/v1") -> openai.AsyncOpenAI:
        sdk = openai.AsyncOpenAI(base_url=self.url + prefix, api_key=key or self.key, max_retries=0)
        self.clients.append(sdk)
        return sdk

    @property
    def url(self) -> str:
        return self.edge.base_url

    @property
    def proxy_url(self) -> str:
        return self.edge.base_url + "/api/proxy"


@pytest.fixture
async def billing(bus: Bus) -> Billing:
    responder = Billing()
    await bus.serve(ADMIT_SUBJECT, responder.handle, queue="billing")
    return responder


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    """Settings a test module changes for its edge (override this fixture in the module)."""
    return {}


@pytest.fixture
def edge_catalogue() -> Catalogue | None:
    """The catalogue the edge sells from (None: the shipped one); override in a module."""
    return None


@pytest.fixture
async def env(
    bus: Bus,
    nats_url: str,
    sim_url: str,
    billing: Billing,
    tmp_path: Path,
    edge_settings_override: dict[str, Any],
    edge_catalogue: Catalogue | None,
) -> AsyncIterator[EdgeEnv]:
    sim_post(sim_url, "/_sim/reset")
    key = make_key()
    account_id = "acct_" + make_key()[-8:]
    await put_key(bus, key, key_record(account_id))
    settings = edge_settings(nats_url, sim_url, tmp_path / "spool", **edge_settings_override)
    edge = EdgeThread(settings, edge_catalogue).start()
    environment = EdgeEnv(edge, bus, billing, key, account_id, sim_url, tmp_path)
    try:
        yield environment
    finally:
        for sdk in environment.clients:
            await sdk.close()
        edge.stop()
