"""``GET /api/v1/account/top-up``: everything the top-up page shows, as JSON (the page polls it
for deposits in flight)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.http import answer, context, require_session
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.topup import (
    TopUpAnswer,
    TopUpDepositsAnswer,
    deposits_view,
    top_up_view,
)


async def top_up(request: Request) -> Response:
    account, _ = await require_session(request)
    return answer(await top_up_view(context(request), account.id))


async def top_up_deposits(request: Request) -> Response:
    account, _ = await require_session(request)
    deposits = await deposits_view(context(request), account.id)
    return answer(TopUpDepositsAnswer(deposits=deposits))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/v1/account/top-up", top_up,
             "Deposit addresses with payment URIs, minimums, confirmations and rates; deposits "
             "with their progress", "session", "payments", None, TopUpAnswer,
             errors=(429, 503)),
    Endpoint("GET", "/api/v1/account/top-up/deposits", top_up_deposits,
             "Deposits with their progress (what the top-up page polls)", "session", "payments",
             None, TopUpDepositsAnswer, errors=(503,)),
)  # fmt: skip
