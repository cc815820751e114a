"""The top-up page's cards against a payments that answers over NATS as the real one does
(in-process accounts, real PostgreSQL and NATS): a card keeps its QR code, payment URI and rate
however often the page is shown once the hourly budget for making addresses is spent, and a
TRON card's QR code holds the bare address (TRON has no standard payment URI), which chromium
draws and zxing reads back."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import zxingcpp
from aiapi_shared import payments_api
from aiapi_shared.bus import Bus
from aiapi_testkit.browser import LAUNCH_ARGS, ensure_chromium
from PIL import Image
from playwright.sync_api import sync_playwright

from tests.accounts.conftest import Running, make_settings, respond, run_app
from tests.accounts.test_caps import customer
from tests.payments.wallets import tron_deposit_address

USDT_CONTRACT = "0x" + "ab" * 20
ETH_ADDRESS = "0x" + "cd" * 20


def fake_payments(app: Running, offers: list[dict[str, Any]]) -> dict[str, Any]:
    """Payments' address and deposit subjects: an account is given every offer's address the
    first time it asks with ``allocate``; ``made`` counts those allocations."""
    state: dict[str, Any] = {"given": set(), "made": 0}

    def addresses(query: dict[str, Any]) -> dict[str, Any]:
        if query["allocate"]:
            state["made"] += 1
            state["given"].add(query["account_id"])
        if query["account_id"] in state["given"]:
            return {"addresses": offers, "missing": 0}
        return {"addresses": [], "missing": len(offers)}

    state["serving"] = [
        respond(app.bus, payments_api.ADDRESSES_SUBJECT, addresses),
        respond(app.bus, payments_api.DEPOSITS_SUBJECT, lambda _: {"deposits": []}),
    ]
    return state


def card(page: str, asset: str) -> str:
    found = re.search(rf'<section class="card asset"[^>]*data-asset="{asset}">(.*?)</section>',
                      page, re.S)  # fmt: skip
    assert found, page
    return found.group(1)


async def test_a_card_keeps_its_qr_code_and_rate_once_the_address_budget_is_spent(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    usdt = {"asset": "USDT", "network": "ethereum", "address": ETH_ADDRESS, "chain_id": 1,
            "token_contract": USDT_CONTRACT, "minimum_usd": "5.00", "confirmations": 12,
            "finality": "confirmations", "rate_usd": "1.00", "rate_source": "par"}  # fmt: skip
    settings = make_settings(database_url, nats_url, deposit_address_requests_per_hour=1)
    async with run_app(settings, bus) as app:
        payments = fake_payments(app, [usdt])
        await asyncio.gather(*payments["serving"])
        client, _, _ = await customer(app, "quinn@example.com")
        uri = f"ethereum:{USDT_CONTRACT}@1/transfer?address={ETH_ADDRESS}"
        for _ in range(4):  # the first load makes the address and spends the whole budget
            page = await client.get("/top-up")
            assert page.status_code == 200, page.text
            shown = card(page.text, "USDT")
            assert '<svg role="img" aria-label="QR code of the USDT payment address' in shown
            assert f'<code class="uri" id="uri-1">{uri.replace("&", "&amp;")}</code>' in shown
            assert "1.00 USD per USDT (par)" in shown
            assert "5.00 USD" in shown
        assert payments["made"] == 1


def read_qr(svg: str) -> list[str]:
    """The QR codes chromium draws from ``svg``, read back with zxing."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(ensure_chromium()), args=list(LAUNCH_ARGS), headless=True
        )
        try:
            page = browser.new_page()
            page.set_content(f"<!doctype html><body style='margin:0;background:#fff'>{svg}")
            png = page.locator("svg.qr").screenshot()
        finally:
            browser.close()
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


async def test_a_tron_card_shows_the_address_as_its_qr_code_and_says_why(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    address = tron_deposit_address(1)
    tron = {"asset": "USDT", "network": "tron", "address": address, "minimum_usd": "1.00",
            "confirmations": 20, "finality": "confirmations", "rate_usd": "1.00",
            "rate_source": "par"}  # fmt: skip
    async with run_app(make_settings(database_url, nats_url), bus) as app:
        await asyncio.gather(*fake_payments(app, [tron])["serving"])
        client, _, _ = await customer(app, "tron@example.com")
        page = await client.get("/top-up")
        assert page.status_code == 200, page.text
        shown = card(page.text, "USDT")
        assert "Payment URI" not in shown
        assert "TRON has no standard payment URI" in shown
        svg = re.search(r'<svg role="img".*?</svg>', shown, re.S)
        assert svg, shown
        assert await asyncio.to_thread(read_qr, svg.group(0)) == [address]
        listed = (await client.get("/api/v1/account/top-up")).json()
        assert listed["assets"][0]["payment_uri"] is None
