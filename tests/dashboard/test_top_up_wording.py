"""Payment URIs (BIP21, EIP-681) and the words for a deposit's progress: pure functions."""

from __future__ import annotations

import io

import segno
import zxingcpp
from aiapi_accounts.deposit_progress import explorer_url, progress
from aiapi_accounts.payment_uri import payment_uri, qr_svg
from aiapi_shared.payments_api import Deposit, DepositAddress
from PIL import Image

ADDRESS = "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0"
USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


def test_payment_uris_follow_bip21_and_eip681() -> None:
    btc = DepositAddress(asset="BTC", network="bitcoin", address="bc1qexampleaddress")
    assert payment_uri(btc) == "bitcoin:bc1qexampleaddress"
    eth = DepositAddress(asset="ETH", network="ethereum", address=ADDRESS, chain_id=1)
    assert payment_uri(eth) == f"ethereum:{ADDRESS}@1"
    usdt = DepositAddress(
        asset="USDT", network="ethereum", address=ADDRESS, chain_id=1, token_contract=USDT
    )
    assert payment_uri(usdt) == f"ethereum:{USDT}@1/transfer?address={ADDRESS}"
    # Without the chain id a wallet could pay on the wrong chain: no URI (the address only).
    assert payment_uri(DepositAddress(asset="ETH", network="ethereum", address=ADDRESS)) is None


def test_the_qr_svg_is_labelled_and_holds_the_uri() -> None:
    svg = qr_svg("bitcoin:bc1qexampleaddress", 'QR of "bc1q…" <address>')
    assert svg.startswith('<svg role="img" aria-label="QR of &quot;bc1q…&quot; &lt;address&gt;"')
    # The same code as a raster decodes to the URI (the browser test decodes the page's SVG).
    png = io.BytesIO()
    segno.make("bitcoin:bc1qexampleaddress", error="m").save(png, kind="png", scale=5)
    png.seek(0)
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(png))] == [
        "bitcoin:bc1qexampleaddress"
    ]


def deposit(state: str, confirmations: int, needed: int | None) -> Deposit:
    return Deposit(
        asset="USDT", network="ethereum", tx_hash="0xab", position=0, amount="1",
        confirmations=confirmations, state=state, confirmations_required=needed,  # type: ignore[arg-type]
    )  # fmt: skip


def test_progress_in_words() -> None:
    assert progress(deposit("detected", 0, 3)) == "detected, waiting for its first confirmation"
    assert progress(deposit("detected", 2, 3)) == "confirming 2/3"
    assert progress(deposit("detected", 5, 3)) == "confirming 3/3"
    assert progress(deposit("detected", 7, None)).startswith("confirming (7 so far")
    assert progress(deposit("credited", 9, 3)) == "credited"
    assert progress(deposit("below_minimum", 9, 3)).startswith("below the minimum")
    assert progress(deposit("orphaned", 0, 3)).startswith("orphaned")


def test_explorer_links_only_where_the_operator_set_one() -> None:
    templates = {"ethereum": "https://etherscan.io/tx/{tx}"}
    assert explorer_url(templates, "ethereum", "0xab") == "https://etherscan.io/tx/0xab"
    assert explorer_url(templates, "bitcoin", "ff") is None
