"""The per-request log (``GET /api/v1/account/requests``, JSON pages or the whole CSV), one
request by id, and daily usage per key: billing's records, always the caller's own."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

from aiapi_shared.billing_api import (
    DailyKeyUsageReply,
    DailyUsageQuery,
    RequestListQuery,
    RequestListReply,
    RequestRecordReply,
)
from aiapi_shared.events import Usage
from aiapi_shared.money import Money
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.http import answer, context, require_session
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.peers import Peers
from aiapi_accounts.request_filter import (
    CSV_COLUMNS,
    MAX_LIMIT,
    csv_row,
    encode_cursor,
    list_query,
)
from aiapi_accounts.schemas import Answer


class RequestAnswer(Answer):
    request_id: str
    created_at: datetime
    key_id: str
    model: str
    route: str
    status: str
    status_code: int
    usage: Usage
    cost_usd: Money


class RequestPageAnswer(Answer):
    data: list[RequestAnswer]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")


async def requests(request: Request) -> Response:
    account, _ = await require_session(request)
    return await request_page(request, account.id)


async def request_page(request: Request, account_id: str) -> Response:
    """One page of ``account_id``'s request log (or all of it as CSV), by the query string; the
    customer's own route and the operator's route of any account answer the same."""
    params = request.query_params
    peers = context(request).peers
    kind = params.get("format", "json")
    if kind == "csv":
        query = list_query(account_id, params, limit=MAX_LIMIT)
        first = await peers.request_list(query)
        return StreamingResponse(
            _csv(peers, query, first),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="requests.csv"'},
        )
    if kind != "json":
        raise InvalidRequest("format is json or csv")
    reply = await peers.request_list(list_query(account_id, params))
    return answer(
        RequestPageAnswer(
            data=[
                RequestAnswer(
                    request_id=r.id, created_at=r.created_at, key_id=r.key_id, model=r.model,
                    route=r.route, status=r.status, status_code=r.status_code, usage=r.usage,
                    cost_usd=r.cost_usd,
                )
                for r in reply.records
            ],
            next_cursor=encode_cursor(reply.records[-1]) if reply.more else None,
        )
    )  # fmt: skip


async def _csv(
    peers: Peers, query: RequestListQuery, reply: RequestListReply
) -> AsyncIterator[str]:
    """Every record the filters select, page after page. The first page was asked before the
    answer started, so billing being down is a 503; failing later cuts the file short."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    while True:
        for row in reply.records:
            writer.writerow(csv_row(row))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if not reply.more:
            return
        last = reply.records[-1]
        query = query.model_copy(
            update={"before_started_at": last.created_at, "before_request_id": last.id}
        )
        reply = await peers.request_list(query)


async def one_request(request: Request) -> Response:
    account, _ = await require_session(request)
    record = await context(request).peers.request_record(
        account.id, request.path_params["request_id"]
    )
    return answer(record)


async def usage_by_key(request: Request) -> Response:
    account, _ = await require_session(request)
    raw = request.query_params.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= 366:
        raise InvalidRequest("days must be between 1 and 366")
    reply = await context(request).peers.daily_key_usage(
        DailyUsageQuery(account_id=account.id, days=int(raw))
    )
    return answer(reply)


_P = "/api/v1/account"
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _P + "/requests", requests,
             "Priced requests, newest first (?key_id=&model=&from=&to=&cursor=&limit=; "
             "format=csv: every matching record as CSV)", "session", "usage", None,
             RequestPageAnswer, errors=(400, 503)),
    Endpoint("GET", _P + "/requests/{request_id}", one_request,
             "One request's priced record, by its request-id", "session", "usage", None,
             RequestRecordReply, errors=(404, 503)),
    Endpoint("GET", _P + "/usage/by-key", usage_by_key, "Usage per day, model and key (?days=)",
             "session", "usage", None, DailyKeyUsageReply, errors=(400, 503)),
)  # fmt: skip
