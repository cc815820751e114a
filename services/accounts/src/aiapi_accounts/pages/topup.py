"""The top-up page: a card per enabled asset (address, QR code of its payment URI, minimum,
confirmations, rate) and the deposits, which ``app.js`` refreshes from the JSON API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.http import context
from aiapi_accounts.pages.view import Pages
from aiapi_accounts.payment_uri import qr_content, qr_svg
from aiapi_accounts.topup import TopUpAnswer, top_up_view

POLL_EVERY_MS = 3000


async def top_up_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    try:
        view = await top_up_view(context(request), me.account.id)
    except AccountsError as exc:
        return pages.show(
            request, "top_up.html", me, "top-up", exc.status, view=TopUpAnswer(assets=[], deposits=[]),
            qr_codes={}, poll_every_ms=POLL_EVERY_MS, error=exc.message,
        )  # fmt: skip
    qr_codes = {}
    for a in view.assets:
        content = qr_content(a.network, a.address, a.payment_uri)
        if content is not None:
            label = f"QR code of the {a.asset} payment address {a.address}"
            qr_codes[a.asset + "/" + a.network] = qr_svg(content, label)
    return pages.show(
        request, "top_up.html", me, "top-up", view=view, qr_codes=qr_codes,
        poll_every_ms=POLL_EVERY_MS,
    )  # fmt: skip
