"""Payment URIs that wallets understand, and their QR codes (pure: text in, text out).

- BTC: BIP21, ``bitcoin:<address>``.
- ETH (a network's own coin) on an EVM chain: EIP-681, ``ethereum:<address>@<chain id>``.
- An ERC-20 token (USDT): EIP-681 calling the token's ``transfer``,
  ``ethereum:<contract>@<chain id>/transfer?address=<address>``; a wallet fills in the amount.
- TRON: there is no standard payment URI (no BIP21/EIP-681 counterpart that TRON wallets agree
  on): None. The card's QR code then holds the bare ``T…`` address, which is what TRON wallets
  scan, and the page says so (:func:`qr_content`).
- An EVM address without a chain id: None, and no QR code (a wallet could pay on a wrong chain).
No amount is put in a URI: the customer chooses how much to send.
"""

from __future__ import annotations

import html

import segno
from aiapi_shared.payments_api import DepositAddress


def payment_uri(address: DepositAddress) -> str | None:
    if address.network == "bitcoin" and address.asset == "BTC":
        return f"bitcoin:{address.address}"
    if address.chain_id is None or address.network == "tron":
        return None  # TRON wallets have no URI convention this page can promise
    if address.token_contract is None:  # the network's own coin (ETH on Ethereum, Base, ...)
        return f"ethereum:{address.address}@{address.chain_id}"
    if address.token_contract is not None:
        return (
            f"ethereum:{address.token_contract}@{address.chain_id}/transfer"
            f"?address={address.address}"
        )
    return None


def qr_content(network: str, address: str, uri: str | None) -> str | None:
    """What the card's QR code holds: the payment URI, or a TRON address as it is."""
    if uri is not None:
        return uri
    return address if network == "tron" else None


def qr_svg(uri: str, label: str) -> str:
    """An inline SVG QR code (dark modules on a white field with the quiet zone, whatever the
    page's colour scheme: scanners need the contrast)."""
    code = segno.make(uri, error="m")
    svg: str = code.svg_inline(
        scale=5, border=4, dark="#000000", light="#ffffff", title=label, svgclass="qr"
    )
    return svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)
