"""Fixtures of the payments tests: a real anvil with a Vyper token, a fake Esplora."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from tests.payments.anvil import running_anvil
from tests.payments.chain import Chain
from tests.payments.fake_esplora import FakeEsplora, serve


@pytest.fixture
def anvil_url(tmp_path: Path) -> Iterator[str]:
    with running_anvil(tmp_path / "anvil.log") as url:
        yield url


@pytest.fixture
async def w3(anvil_url: str) -> AsyncIterator[AsyncWeb3[Any]]:
    web3 = AsyncWeb3(AsyncHTTPProvider(anvil_url))
    try:
        yield web3
    finally:
        await web3.provider.disconnect()


@pytest.fixture
async def chain(w3: AsyncWeb3[Any]) -> Chain:
    driver = Chain(w3)
    await driver.setup()
    return driver


@pytest.fixture
def esplora() -> FakeEsplora:
    return FakeEsplora()


@pytest.fixture
async def esplora_client(esplora: FakeEsplora) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(esplora.app()) as url, httpx.AsyncClient(base_url=url) as client:
        yield client
