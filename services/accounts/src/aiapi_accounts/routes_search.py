"""The operator's search and account inspection: ``GET /admin/v1/accounts?q=&sort=&order=&cursor=``
and one account's whole picture (``/admin/v1/accounts/{id}/overview``, its request log and its
ledger pages).

A search text is looked up where each kind of identifier lives, at once: accounts (an account
id, part of an email, a key's id or hint, a whole key by its hash), billing (a ``request-id``)
and payments (a deposit address or a transaction hash). A peer that does not answer does not
fail the search: its name is listed in ``unsearched``. Sorting by sign-up time is accounts'
own; sorting by balance or spend is billing's (it holds the figures), and accounts adds the
rest of each row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Literal, TypeVar

from aiapi_shared.apikeys import key_hash
from aiapi_shared.billing_api import (
    DailyUsageQuery,
    DailyUsageRow,
    LedgerEntry,
    LedgerQuery,
    LedgerReply,
)
from aiapi_shared.console_api import SPEND_DAYS, AccountFigures, AccountListQuery
from aiapi_shared.money import Money
from aiapi_shared.payments_api import Deposit
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.account_search import (
    MAX_MATCHES,
    Position,
    SearchParams,
    encode_cursor,
    may_be_key,
    may_be_on_chain,
    may_be_request_id,
    search_params,
)
from aiapi_accounts.context import Context
from aiapi_accounts.directory import Directory, directory
from aiapi_accounts.domain import Account
from aiapi_accounts.errors import InvalidRequest, PeerUnavailable
from aiapi_accounts.http import acting, answer, context
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.routes_usage import RequestPageAnswer, request_page
from aiapi_accounts.schemas import AccountAnswer, Answer, KeyAnswer

T = TypeVar("T")
Matched = Literal["id", "email", "key", "request_id", "deposit_address", "tx_hash"]


class AccountRowAnswer(AccountAnswer):
    balance_usd: Money | None = Field(description="null while billing does not answer")
    available_usd: Money | None
    spend_usd: Money | None = Field(description=f"usage cost of the last {SPEND_DAYS} UTC days")
    matched: list[Matched] = Field(description="what the search text matched (empty: no q)")


class AccountPageAnswer(Answer):
    data: list[AccountRowAnswer]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")
    unsearched: list[str] = Field(
        description="services that did not answer: their identifiers were not searched"
    )


class SessionRowAnswer(Answer):
    id: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class AccountOverviewAnswer(Answer):
    account: AccountAnswer
    balance_usd: Money | None
    available_usd: Money | None
    held_usd: Money | None = Field(description="open holds and admission leases")
    spend_usd: Money | None = Field(description=f"usage cost of the last {SPEND_DAYS} UTC days")
    keys: list[KeyAnswer]
    sessions: list[SessionRowAnswer]
    ledger: list[LedgerEntry] | None = Field(description="the newest entries; null: billing down")
    usage: list[DailyUsageRow] | None = Field(description=f"per day and model, {SPEND_DAYS} days")
    deposits: list[Deposit] | None = Field(description="null while payments does not answer")
    unavailable: list[str]


async def _try(call: Awaitable[T], peer: str, missing: list[str]) -> T | None:
    """The peer's answer, or None with its name noted when it is unreachable."""
    try:
        return await call
    except PeerUnavailable:
        missing.append(peer)
        return None


async def _matches(
    ctx: Context, book: Directory, text: str, unsearched: list[str]
) -> dict[str, list[Matched]]:
    """Every account the text names, with what matched."""
    found: dict[str, list[Matched]] = {}

    def note(account_id: str, kind: Matched) -> None:
        kinds = found.setdefault(account_id, [])
        if kind not in kinds:
            kinds.append(kind)

    async def local() -> list[tuple[str, str]]:
        # A whole key is hashed here and only the hash is compared.
        digest = key_hash(text) if may_be_key(text) else ""
        return await book.matches(text, digest, MAX_MATCHES + 1)

    async def request_owner() -> str | None:
        if not may_be_request_id(text):
            return None
        return await _try(ctx.peers.request_owner(text), "billing", unsearched)

    async def on_chain() -> list[tuple[str, Matched]]:
        if not may_be_on_chain(text):
            return []
        owners = await _try(ctx.peers.deposit_owners(text), "payments", unsearched) or []
        return [
            (o.account_id, "deposit_address" if o.matched == "address" else "tx_hash")
            for o in owners
        ]

    mine, owner, chain = await asyncio.gather(local(), request_owner(), on_chain())
    for account_id, kind in mine:
        note(account_id, kind)  # type: ignore[arg-type]
    if owner is not None:
        note(owner, "request_id")
    for account_id, chain_kind in chain:
        note(account_id, chain_kind)
    if len(found) > MAX_MATCHES:
        raise InvalidRequest(f"more than {MAX_MATCHES} accounts match; narrow the search")
    return found


async def search(request: Request) -> Response:
    acting(request)
    return answer(await find_accounts(request))


async def find_accounts(request: Request) -> AccountPageAnswer:
    """The page of accounts the query string asks for (the console's page uses it too)."""
    ctx = context(request)
    params = search_params(request.query_params)
    unsearched: list[str] = []
    matched: dict[str, list[Matched]] | None = None
    if params.text is not None:
        matched = await _matches(ctx, directory(request), params.text, unsearched)
    ids = None if matched is None else sorted(matched)
    if ids == []:
        return AccountPageAnswer(data=[], next_cursor=None, unsearched=unsearched)
    if params.sort == "created":
        page, more, figures = await _by_created(ctx, directory(request), params, ids, unsearched)
    else:
        page, more, figures = await _by_figure(ctx, directory(request), params, ids)
    rows = [
        AccountRowAnswer(
            **AccountAnswer.of(account).model_dump(),
            balance_usd=figures[account.id].balance if account.id in figures else None,
            available_usd=figures[account.id].available if account.id in figures else None,
            spend_usd=figures[account.id].spend if account.id in figures else None,
            matched=(matched or {}).get(account.id, []),
        )
        for account in page
    ]
    cursor = None
    if more and page:
        last = page[-1]
        value: datetime | int = last.created_at
        if params.sort != "created":
            value = getattr(figures[last.id], params.sort)
        order = "desc" if params.descending else "asc"
        cursor = encode_cursor(params.sort, order, Position(value, last.id))
    return AccountPageAnswer(data=rows, next_cursor=cursor, unsearched=unsearched)


async def _by_created(
    ctx: Context,
    book: Directory,
    params: SearchParams,
    ids: list[str] | None,
    unsearched: list[str],
) -> tuple[list[Account], bool, dict[str, AccountFigures]]:
    after = None
    if params.after is not None:
        assert isinstance(params.after.value, datetime)
        after = (params.after.value, params.after.account_id)
    found = await book.page(ids, after, descending=params.descending, limit=params.limit + 1)
    page = found[: params.limit]
    figures: dict[str, AccountFigures] = {}
    if page:
        query = AccountListQuery(account_ids=[a.id for a in page], limit=len(page))
        reply = await _try(ctx.peers.account_figures(query), "billing", unsearched)
        figures = {row.account_id: row for row in reply.rows} if reply else {}
    return page, len(found) > params.limit, figures


async def _by_figure(
    ctx: Context, book: Directory, params: SearchParams, ids: list[str] | None
) -> tuple[list[Account], bool, dict[str, AccountFigures]]:
    """Billing orders the page; an account billing knows and accounts does not (none should
    exist) is left out of it."""
    after = params.after
    if after is not None and not isinstance(after.value, int):
        raise InvalidRequest("cursor is not one this API gave")
    query = AccountListQuery(
        account_ids=ids,
        sort="balance" if params.sort == "balance" else "spend",
        order="desc" if params.descending else "asc",
        after_value=after.value if after else None,
        after_id=after.account_id if after else None,
        limit=params.limit,
    )
    reply = await ctx.peers.account_figures(query)
    accounts = await book.by_ids([r.account_id for r in reply.rows])
    page = [accounts[r.account_id] for r in reply.rows if r.account_id in accounts]
    return page, reply.more, {r.account_id: r for r in reply.rows}


async def overview(request: Request) -> Response:
    acting(request)
    return answer(await account_overview(request, request.path_params["id"]))


async def account_overview(request: Request, account_id: str) -> AccountOverviewAnswer:
    """Everything about one account an operator looks at first; each peer's part is null while
    that peer does not answer (the rest is still shown)."""
    ctx = context(request)
    account = await ctx.accounts.get(account_id)
    missing: list[str] = []
    keys, sessions = await asyncio.gather(
        ctx.accounts.list_keys(account.id), ctx.accounts.sessions(account.id)
    )
    figures, ledger, usage, deposits = await asyncio.gather(
        _try(
            ctx.peers.account_figures(AccountListQuery(account_ids=[account.id], limit=1)),
            "billing",
            missing,
        ),
        _try(ctx.peers.ledger(LedgerQuery(account_id=account.id, limit=20)), "billing", missing),
        _try(
            ctx.peers.daily_usage(DailyUsageQuery(account_id=account.id, days=SPEND_DAYS)),
            "billing",
            missing,
        ),
        _try(ctx.peers.deposits(account.id), "payments", missing),
    )
    row = figures.rows[0] if figures and figures.rows else None
    return AccountOverviewAnswer(
        account=AccountAnswer.of(account),
        balance_usd=row.balance if row else None,
        available_usd=row.available if row else None,
        held_usd=row.holds if row else None,
        spend_usd=row.spend if row else None,
        keys=[KeyAnswer.of(k) for k in keys],
        sessions=[
            SessionRowAnswer(
                id=s.id,
                user_agent=s.user_agent,
                created_at=s.created_at,
                last_seen_at=s.last_seen_at,
                expires_at=s.expires_at,
            )
            for s in sessions
        ],
        ledger=ledger.entries if ledger else None,
        usage=usage.rows if usage else None,
        deposits=deposits,
        unavailable=sorted(set(missing)),
    )


async def requests(request: Request) -> Response:
    """The account's request log exactly as its owner sees it (the same filters, pages, CSV)."""
    acting(request)
    account = await context(request).accounts.get(request.path_params["id"])
    return await request_page(request, account.id)


async def ledger(request: Request) -> Response:
    acting(request)
    ctx = context(request)
    account = await ctx.accounts.get(request.path_params["id"])
    raw_limit = request.query_params.get("limit", "50")
    raw_before = request.query_params.get("before_id")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
        raise InvalidRequest("limit must be between 1 and 500")
    if raw_before is not None and not raw_before.isdigit():
        raise InvalidRequest("before_id must be a ledger entry's id")
    query = LedgerQuery(
        account_id=account.id,
        limit=int(raw_limit),
        before_id=int(raw_before) if raw_before is not None else None,
    )
    return answer(await ctx.peers.ledger(query))


_A = "/admin/v1/accounts"
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _A, search,
             "Find accounts (?q= an email or part of one, account id, key id or hint, deposit "
             "address, transaction hash or request-id; &sort=created|balance|spend&order=desc|asc"
             "&limit=&cursor=)", "admin", "operator", None, AccountPageAnswer, errors=(400, 503)),
    Endpoint("GET", _A + "/{id}/overview", overview,
             "One account: figures, keys, sessions, newest ledger entries, daily usage, deposits",
             "admin", "operator", None, AccountOverviewAnswer, errors=(404,)),
    Endpoint("GET", _A + "/{id}/requests", requests,
             "The account's priced requests, as its owner sees them (?key_id=&model=&from=&to="
             "&cursor=&limit=; format=csv)", "admin", "operator", None, RequestPageAnswer,
             errors=(400, 404, 503)),
    Endpoint("GET", _A + "/{id}/ledger", ledger,
             "The account's ledger, newest first (?limit=&before_id=)", "admin", "operator",
             None, LedgerReply, errors=(400, 404, 503)),
)  # fmt: skip
