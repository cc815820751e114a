"""Fixtures of the dashboard tests: the real processes (from the e2e tests), a real chromium,
and helpers to fill the pages' forms and take the screenshots for docs/dashboard.md."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import zxingcpp
from aiapi_cli.embedded import EmbeddedNats
from aiapi_testkit.browser import browser
from aiapi_testkit.npm import npm_install
from aiapi_testkit.plugin import SpawnFn
from PIL import Image
from playwright.sync_api import Browser, Page
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from tests.e2e.conftest import deploy, deployment, shared_deployment
from tests.e2e.support import Deployment
from tests.payments.anvil import running_anvil
from tests.payments.chain import token_artifacts
from tests.payments.wallets import ETH_ADDRESS_0, ETH_XPUB

__all__ = ["browser", "deployment", "shared_deployment"]

PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/dashboard/ when AIAPI_UPDATE_SCREENSHOTS=1, else a temp dir."""
    if os.environ.get("AIAPI_UPDATE_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "dashboard"
    else:
        target = tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


AXE_PACKAGE = "axe-core@4.14.1"
TOOLS = REPO_ROOT / ".tools"


def axe_source() -> str:
    """axe-core's browser bundle, installed from npm into .tools/ on first use."""
    prefix = TOOLS / "axe-core"
    bundle = npm_install(AXE_PACKAGE, prefix, prefix / "node_modules" / "axe-core" / "axe.min.js")
    return bundle.read_text("utf-8")


_AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
  }));
}"""


def check_accessibility(page: Page) -> None:
    """axe-core finds no serious or critical violation, in the light and the dark scheme."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        violations = page.evaluate(_AXE_RUN)
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not bad, f"{page.url} ({scheme}): {bad}"
    page.emulate_media(color_scheme="light")


def shoot(page: Page, directory: Path, name: str, *, hide: str | None = None) -> None:
    """Check the page with axe-core, then take a full-page screenshot at desktop width and one
    at phone width; ``hide`` names an element painted over (a key must not end up in the
    repository, even a dead test key)."""
    check_accessibility(page)
    size = page.viewport_size or DESKTOP
    mask = [page.locator(hide)] if hide else []
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(directory / f"{name}-{label}.png"), full_page=True, mask=mask)
    page.set_viewport_size(size)


@contextlib.contextmanager
def opened_page(browser: Browser, deployment: Deployment, **options: Any) -> Iterator[Page]:
    """A page in a fresh browser context (its own cookies) on the deployment's dashboard."""
    context = browser.new_context(base_url=deployment.accounts_url, viewport=DESKTOP, **options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=deployment.accounts_url)
    # An init script runs before the page's own and is not subject to its CSP (which allows no
    # inline script): axe is there on every page.
    context.add_init_script(script=axe_source())
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, deployment: Deployment) -> Iterator[Page]:
    with opened_page(browser, deployment) as opened:
        yield opened


def sign_up_and_in(page: Page, email: str, plan: str = "basic") -> None:
    page.goto("/sign-up")
    page.get_by_label("Email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.locator(f"input[name=plan][value={plan}]").check()
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def my_account_id(page: Page) -> str:
    """The signed-in account's id, read through the page's own session."""
    answer = page.request.get("/api/v1/account")
    assert answer.ok, answer.text()
    account_id: str = answer.json()["id"]
    return account_id


def credit(admin: httpx.Client, account_id: str, amount_usd: str) -> None:
    answer = admin.post(
        f"/admin/v1/accounts/{account_id}/adjustments",
        json={"amount_usd": amount_usd, "reason": "dashboard test"},
        headers={"Idempotency-Key": f"dash-{account_id}-{amount_usd}"},
    )
    assert answer.status_code == 201, answer.text


HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def reload_until(page: Page, selector: str, text: str, timeout_s: float = 15.0) -> None:
    """Reload the page until ``selector`` shows ``text`` (for what settles asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while page.locator(selector).inner_text().strip() != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} shows {page.locator(selector).inner_text()!r}")
        time.sleep(0.2)
        page.reload()


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[str]:
    with running_anvil(tmp_path / "anvil.log") as url:
        yield url


@dataclass
class Chain:
    """anvil through web3's synchronous client (the browser tests are synchronous)."""

    w3: Web3
    token: Contract

    @property
    def payer(self) -> str:
        payer: str = self.w3.eth.accounts[0]
        return payer

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])

    def send_usdt(self, to: str, units: int) -> None:
        tx = self.token.functions.transfer(to, units).transact({"from": self.payer})
        self.w3.eth.wait_for_transaction_receipt(tx)


@pytest.fixture
def chain(anvil: str) -> Chain:
    w3 = Web3(Web3.HTTPProvider(anvil))
    abi, bytecode = token_artifacts()
    deploying = w3.eth.contract(abi=abi, bytecode=bytecode)
    tx = deploying.constructor("USDT", 10**15).transact({"from": w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    return Chain(w3, w3.eth.contract(address=receipt["contractAddress"], abi=abi))


ETH_CONFIRMATIONS = 3
EXPLORER = "https://explorer.example/tx/{tx}"


def anvil_payments_env(chain: Chain, anvil: str) -> dict[str, str]:
    """Payments' settings for watching anvil from its next block: USDT (the test token) and ETH,
    ``ETH_CONFIRMATIONS`` deep, polled often, no price source."""
    return {
        "AIAPI_ETH_RPC_URL": anvil,
        "AIAPI_ETH_CHAIN_ID": "31337",
        "AIAPI_ETH_XPUB": ETH_XPUB,
        "AIAPI_ETH_ADDRESS_0": ETH_ADDRESS_0,
        "AIAPI_USDT_CONTRACT": chain.token.address,
        "AIAPI_ETH_START_BLOCK": str(chain.w3.eth.block_number + 1),
        "AIAPI_ETH_FINALITY": str(ETH_CONFIRMATIONS),
        "AIAPI_PRICE_SOURCES": "",
        "AIAPI_ETH_POLL_INTERVAL_S": "0.2",
        "AIAPI_OUTBOX_INTERVAL_S": "0.2",
    }


def decoded_qr(page: Page, asset: str) -> str:
    """The text of the QR code on the ``asset`` card, read from the page's pixels (zxing)."""
    png = page.locator(f".asset[data-asset={asset}] svg.qr").screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, f"{len(found)} QR codes read on the {asset} card"
    text: str = found[0].text
    return text


PaymentsDeploy = Callable[[dict[str, str]], contextlib.AbstractContextManager[Deployment]]


@pytest.fixture
def payments_deploy(
    database_url: str,
    strict_nats_server: EmbeddedNats,
    nats_login: Callable[[str], dict[str, str]],
    spawn: SpawnFn,
    tmp_path: Path,
) -> PaymentsDeploy:
    """Start the deployment with payments, given payments' chain settings."""

    def start(extra: dict[str, str]) -> contextlib.AbstractContextManager[Deployment]:
        return deploy(
            database_url, strict_nats_server, nats_login, spawn, tmp_path,
            extra_env=extra, payments=True,
        )  # fmt: skip

    return start


@pytest.fixture
def paid_deployment(
    payments_deploy: PaymentsDeploy, chain: Chain, anvil: str
) -> Iterator[Deployment]:
    """The deployment with payments watching anvil (USDT and ETH, 3 confirmations)."""
    extra = {
        **anvil_payments_env(chain, anvil),
        "AIAPI_EXPLORER_TX_URLS": json.dumps({"ethereum": EXPLORER}),
    }
    with payments_deploy(extra) as running:
        yield running


@pytest.fixture
def paid_page(browser: Browser, paid_deployment: Deployment) -> Iterator[Page]:
    with opened_page(browser, paid_deployment) as opened:
        yield opened


def make_operator(deployment: Deployment, name: str, email: str, role: str) -> str:
    """An operator with a console password (made with the bootstrap token); its id."""
    with deployment.admin() as admin:
        made = admin.post(
            "/admin/v1/operators",
            json={"name": name, "email": email, "role": role, "password": PASSWORD},
        )
        assert made.status_code == 201, made.text
        operator_id: str = made.json()["id"]
        return operator_id


@contextlib.contextmanager
def console_page(
    browser: Browser, deployment: Deployment, email: str, **options: Any
) -> Iterator[Page]:
    """A fresh browser context on the operator listener, signed in to the console as ``email``
    (``options`` for the context: ``java_script_enabled=False``, say)."""
    context = browser.new_context(base_url=deployment.admin_url, viewport=DESKTOP, **options)
    context.add_init_script(script=axe_source())
    try:
        page = context.new_page()
        page.goto("/admin/sign-in")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Operator console").wait_for()
        yield page
    finally:
        context.close()
