"""``GET /api/v1/account/top-up``: everything the top-up page shows, as JSON (the page polls it
for deposits in flight)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.http import answer, context, require_session
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.topup import TopUpAnswer, top_up_view


async def top_up(request: Request) -> Response:
    account, _ = await require_session(request)
    return answer(await top_up_view(context(request), account.id))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/v1/account/top-up", top_up,
             "Deposit addresses with payment URIs, minimums, confirmations and rates; deposits "
             "with their progress", "session", "payments", None, TopUpAnswer),
)  # fmt: skip
