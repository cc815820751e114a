"""Request/reply handlers for the operator console (``aiapi_shared.console_api``): read-only
questions about accounts, requests, the business and the last minute."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiapi_shared import console_api as api
from aiapi_shared.bus import Bus
from aiapi_shared.events import Record
from psycopg_pool import AsyncConnectionPool

from aiapi_billing.repository import Conn, console
from aiapi_billing.rpc import _handler

Handler = Callable[[bytes], Awaitable[bytes]]
SETTLEMENT_STREAM, SETTLEMENT_DURABLE = "USAGE", "billing-settlement"
# A report over a long period groups many records: more time than the hot reads get.
REPORT_TIMEOUT_S = 30.0


def console_routes(pool: AsyncConnectionPool, bus: Bus) -> list[tuple[str, Handler]]:
    def read(
        query: Callable[[Conn, Any], Awaitable[Record]], timeout_s: float = 2.0
    ) -> Callable[[Any], Awaitable[Record]]:
        async def run(request: Any) -> Record:
            async with pool.connection(timeout=timeout_s) as conn:
                return await query(conn, request)

        return run

    async def live(query: api.LiveQuery) -> Record:
        async with pool.connection(timeout=2.0) as conn:
            figures = await console.live(conn, query)
        backlog = await bus.consumer_backlog(SETTLEMENT_STREAM, SETTLEMENT_DURABLE)
        return api.LiveReply(**figures, pending_usage_events=backlog)

    return [
        (api.ACCOUNT_LIST_SUBJECT, _handler(api.AccountListQuery, read(console.account_list))),
        (api.REQUEST_OWNER_SUBJECT, _handler(api.RequestOwnerQuery, read(console.request_owner))),
        (
            api.USAGE_REPORT_SUBJECT,
            _handler(api.UsageReportQuery, read(console.usage_report, REPORT_TIMEOUT_S)),
        ),
        (api.LIVE_SUBJECT, _handler(api.LiveQuery, live)),
    ]
