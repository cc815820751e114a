"""The deposit states the happy path does not show, in a real browser on one open top-up page
(never reloaded): a BTC deposit from an Esplora-shaped server (the one the payments tests drive)
going from the mempool to credited, a USDT deposit below the minimum, and a USDT deposit whose
block anvil reorganises away (orphaned). Payments watches both chains as a process."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import uvicorn
from aiapi_cli.ports import free_port
from aiapi_payments.addresses import BitcoinNetwork, decode_segwit_v0_address
from playwright.sync_api import Browser, Locator, Page, expect
from web3.types import RPCEndpoint

from tests.dashboard.conftest import (
    ETH_CONFIRMATIONS,
    Chain,
    PaymentsDeploy,
    anvil_payments_env,
    decoded_qr,
    opened_page,
    shoot,
    sign_up_and_in,
)
from tests.e2e.support import Deployment
from tests.payments.fake_esplora import FakeEsplora
from tests.payments.wallets import BTC_ADDRESS_0, BTC_VPUB

pytestmark = pytest.mark.slow

T = TypeVar("T")
BTC_CONFIRMATIONS = 2
WAIT_MS = 30_000  # a state change crosses payments' poll, its outbox and the page's own poll


class EsploraThread:
    """The fake Esplora served from a thread of its own; the test changes the chain on the
    server's event loop, so a request never reads it half-changed."""

    def __init__(self) -> None:
        self.chain = FakeEsplora()
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        config = uvicorn.Config(
            self.chain.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._server.serve())

    def __enter__(self) -> EsploraThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "esplora did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._loop.close()

    def do(self, change: Callable[[FakeEsplora], T]) -> T:
        async def on_loop() -> T:
            return change(self.chain)

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(timeout=10)


@pytest.fixture
def esplora() -> Iterator[EsploraThread]:
    with EsploraThread() as served:
        yield served


@pytest.fixture
def two_chain_deployment(
    payments_deploy: PaymentsDeploy, chain: Chain, anvil: str, esplora: EsploraThread
) -> Iterator[Deployment]:
    """Payments watching anvil (USDT and ETH, 3 confirmations) and the fake Esplora (BTC on
    regtest, 2 confirmations)."""
    extra = {
        **anvil_payments_env(chain, anvil),
        "AIAPI_BTC_ESPLORA_URL": esplora.url,
        "AIAPI_BTC_NETWORK": "regtest",
        "AIAPI_BTC_XPUB": BTC_VPUB,
        "AIAPI_BTC_ADDRESS_0": BTC_ADDRESS_0,
        "AIAPI_BTC_CONFIRMATIONS": str(BTC_CONFIRMATIONS),
        "AIAPI_BTC_POLL_INTERVAL_S": "0.2",
        "AIAPI_EXPLORER_TX_URLS": json.dumps({"bitcoin": "https://mempool.example/tx/{tx}"}),
    }
    with payments_deploy(extra) as running:
        yield running


def set_btc_rate(deployment: Deployment, usd: str) -> None:
    with deployment.admin() as admin:
        answer = admin.post("/admin/v1/rates", json={"asset": "BTC", "usd": usd})
        assert answer.status_code == 201, answer.text


def row_of(page: Page, asset: str, amount: str) -> Locator:
    """The deposit row of ``asset`` whose amount is ``amount`` (trailing zeros aside)."""
    rows = page.locator("#deposits tbody tr").filter(has_text=asset)
    exact = re.compile(rf"^{re.escape(amount)}(\.?0*)$")
    return rows.filter(has=page.locator("td.num").get_by_text(exact))


def test_btc_below_minimum_and_orphaned_deposits_follow_live(
    browser: Browser,
    two_chain_deployment: Deployment,
    chain: Chain,
    esplora: EsploraThread,
    screenshots: Path,
) -> None:
    set_btc_rate(two_chain_deployment, "60000")
    with opened_page(browser, two_chain_deployment) as page:
        page.context.set_default_timeout(30_000)
        sign_up_and_in(page, "states@example.com")
        page.goto("/top-up")
        btc_card = page.locator(".asset[data-asset=BTC]")
        expect(btc_card).to_contain_text("60000.00 USD per BTC (set by the operator)")
        btc_address = btc_card.locator(".address code").inner_text()
        assert btc_address.startswith("bcrt1")
        assert decoded_qr(page, "BTC") == f"bitcoin:{btc_address}"  # BIP21
        eth_address = page.locator(".asset[data-asset=USDT] .address code").inner_text()
        page.evaluate("window.stillTheSamePage = true")

        # BTC: seen in the mempool, then confirming, then credited at the operator's rate.
        script = "0014" + decode_segwit_v0_address(btc_address, BitcoinNetwork.REGTEST).hex()
        esplora.do(lambda c: c.send((btc_address, script, 100_000)))  # 0.001 BTC = 60 USD
        btc = row_of(page, "BTC", "0.001")
        expect(btc.locator(".progress")).to_have_text(
            "detected, waiting for its first confirmation", timeout=WAIT_MS
        )
        expect(btc).to_have_attribute("data-state", "detected", timeout=WAIT_MS)
        esplora.do(lambda c: c.mine(1))
        expect(btc.locator(".progress")).to_have_text(
            f"confirming 1/{BTC_CONFIRMATIONS}", timeout=WAIT_MS
        )
        esplora.do(lambda c: c.mine(1))
        expect(btc.locator(".progress")).to_have_text("credited", timeout=WAIT_MS)
        expect(btc).to_contain_text("60.00")
        link = btc.get_by_role("link")
        assert (link.get_attribute("href") or "").startswith("https://mempool.example/tx/")

        # USDT below the 1.00 USD minimum: recorded, never credited.
        chain.send_usdt(eth_address, 500_000)  # 0.5 USDT
        small = row_of(page, "USDT", "0.5")
        chain.mine(ETH_CONFIRMATIONS)
        expect(small).to_have_attribute("data-state", "below_minimum", timeout=WAIT_MS)
        expect(small.locator(".progress")).to_have_text(
            "below the minimum deposit: recorded, not credited", timeout=WAIT_MS
        )

        # USDT whose block leaves the chain before it is final: orphaned.
        snapshot = chain.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
        chain.send_usdt(eth_address, 7_000_000)  # 7 USDT
        gone = row_of(page, "USDT", "7")
        expect(gone.locator(".progress")).to_have_text(
            f"confirming 1/{ETH_CONFIRMATIONS}", timeout=WAIT_MS
        )
        reverted = chain.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        assert reverted["result"] is True
        chain.mine(ETH_CONFIRMATIONS)  # a longer chain without the transfer
        expect(gone).to_have_attribute("data-state", "orphaned", timeout=WAIT_MS)
        expect(gone.locator(".progress")).to_have_text(
            "orphaned: its block left the chain (reorganisation); it may come back", timeout=WAIT_MS
        )
        assert page.evaluate("window.stillTheSamePage") is True
        shoot(page, screenshots, "top-up-states")

        # Only the BTC deposit was credited.
        balance = page.request.get("/api/v1/account/balance")
        assert balance.ok, balance.text()
        assert balance.json()["balance_usd"] == "60.00"
