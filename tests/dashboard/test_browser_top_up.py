"""The top-up page in a real browser, with payments watching a real Ethereum node (anvil): the QR
codes decode to the payment URIs of the addresses shown, and a USDT deposit appears as detected,
confirming n/N and credited without a reload."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import (
    ETH_CONFIRMATIONS,
    Chain,
    decoded_qr,
    opened_page,
    reload_until,
    shoot,
    sign_up_and_in,
)
from tests.e2e.support import Deployment

pytestmark = pytest.mark.slow


def test_qr_codes_and_a_deposit_followed_live_to_credited(
    paid_page: Page,
    chain: Chain,
    screenshots: Path,
    browser: Browser,
    paid_deployment: Deployment,
) -> None:
    page = paid_page
    page.context.set_default_timeout(20_000)
    sign_up_and_in(page, "payer@example.com")
    page.get_by_role("navigation").get_by_role("link", name="Top up").click()
    usdt_card = page.locator(".asset[data-asset=USDT]")
    eth_card = page.locator(".asset[data-asset=ETH]")
    expect(usdt_card).to_contain_text("1.00 USD")  # the minimum
    expect(usdt_card).to_contain_text(f"Confirmations{ETH_CONFIRMATIONS}")
    expect(usdt_card).to_contain_text("1.00 USD per USDT (par)")
    expect(eth_card).to_contain_text("no fresh rate right now")
    address = usdt_card.locator(".address code").inner_text()
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", address)
    assert eth_card.locator(".address code").inner_text() == address  # one Ethereum address
    # The QR codes hold the payment URIs of the address shown (EIP-681).
    token = chain.token.address
    assert decoded_qr(page, "USDT") == f"ethereum:{token}@31337/transfer?address={address}"
    assert decoded_qr(page, "ETH") == f"ethereum:{address}@31337"
    assert usdt_card.locator("code.uri").inner_text() == decoded_qr(page, "USDT")
    expect(page.locator("#deposits")).to_contain_text("No deposits yet.")
    shoot(page, screenshots, "top-up")

    # From here on the page must follow by itself: a reload would drop this marker.
    page.evaluate("window.stillTheSamePage = true")
    chain.send_usdt(address, 25_500_000)  # 25.5 USDT, mined at once: 1 confirmation
    row = page.locator("#deposits tbody tr").first
    expect(row).to_have_attribute("data-state", "detected")
    expect(row.locator(".progress")).to_have_text(f"confirming 1/{ETH_CONFIRMATIONS}")
    expect(row).to_contain_text("25.5")
    chain.mine(1)
    expect(row.locator(".progress")).to_have_text(f"confirming 2/{ETH_CONFIRMATIONS}")
    shoot(page, screenshots, "top-up-confirming")
    chain.mine(2)
    expect(row).to_have_attribute("data-state", "credited")
    expect(row.locator(".progress")).to_have_text("credited")
    expect(row).to_contain_text("25.50")  # its USD value, exact
    link = row.get_by_role("link")
    assert (link.get_attribute("href") or "").startswith("https://explorer.example/tx/0x")
    assert page.evaluate("window.stillTheSamePage") is True
    page.goto("/")
    reload_until(page, "#balance", "25.50")

    # Another customer has an address of their own and sees none of these deposits.
    with opened_page(browser, paid_deployment) as other:
        sign_up_and_in(other, "other@example.com")
        other.goto("/top-up")
        theirs = other.locator(".asset[data-asset=USDT] .address code").inner_text()
        assert theirs != address
        expect(other.locator("#deposits")).to_contain_text("No deposits yet.")
        listed = other.request.get("/api/v1/account/top-up").json()
        assert listed["deposits"] == []
        assert address not in str(listed)
