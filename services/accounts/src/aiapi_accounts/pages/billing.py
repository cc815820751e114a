"""The billing history page: the ledger as a statement with the balance after each line, paged
by ledger id (``?before=``)."""

from __future__ import annotations

from aiapi_shared.billing_api import LedgerQuery
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.http import context
from aiapi_accounts.pages.statement import statement
from aiapi_accounts.pages.view import Pages

PAGE_ENTRIES = 500


async def billing_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    raw = request.query_params.get("before", "")
    before = int(raw) if raw.isdigit() else None
    lines, older, error = [], None, None
    try:
        reply = await context(request).peers.ledger(
            LedgerQuery(account_id=me.account.id, limit=PAGE_ENTRIES, before_id=before)
        )
        lines = statement(reply.entries)
        if len(reply.entries) == PAGE_ENTRIES:
            older = f"/billing?before={reply.entries[-1].id}"
    except AccountsError as exc:
        error = exc.message
    return pages.show(
        request, "billing.html", me, "billing", lines=lines, older=older, error=error,
        first_page=before is None,
    )  # fmt: skip
