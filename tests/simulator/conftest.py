"""Fixtures: one real simulator server for the suite, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest
from aiapi_simulator import SimulatorConfig
from aiapi_simulator.testing import running_simulator

API_KEY = "sk-ant-sim-test-key"
HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(ping_interval=0.1)) as base_url:
        yield base_url


@pytest.fixture
def http(simulator_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator_url, timeout=10) as client:
        client.post("/_sim/reset").raise_for_status()
        yield client


@pytest.fixture
def client(simulator_url: str, http: httpx.Client) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=simulator_url, api_key=API_KEY, max_retries=0, timeout=10
    ) as sdk:
        yield sdk
