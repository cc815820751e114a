"""The operator API, exactly as CONTRACT.md §3: ``/admin/v1``, ``Authorization: Bearer`` token."""

from __future__ import annotations

import uuid

from aiapi_shared.billing_api import AdjustCommand
from aiapi_shared.catalogue import Catalogue
from aiapi_shared.money import owed
from aiapi_shared.payments_api import (
    Deposit,
    DepositAddress,
    SetRateCommand,
    SweepPlanQuery,
    SweepPlanReply,
)
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.http import acting, answer, build, context, no_content, read_body
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.routes_plans import change_account_terms, known_plan, terms_now
from aiapi_accounts.schemas import (
    AccountAnswer,
    AccountWithBalanceAnswer,
    AdjustmentAnswer,
    AdjustmentBody,
    CreateAccountBody,
    InvitationAnswer,
    KeyCreateBody,
    KeyCreatedAnswer,
    PatchAccountBody,
    RateAnswer,
    RateBody,
    SweepPlanBody,
)


async def create_account(request: Request) -> Response:
    acting(request)
    body = await read_body(request, CreateAccountBody)
    await known_plan(context(request), body.plan)
    account = await context(request).accounts.create(body.email, body.plan)
    return answer(AccountAnswer.of(account), 201)


async def _with_balance(
    request: Request, account_id: str, catalogue: Catalogue | None = None
) -> Response:
    """The account, its balance and its terms now (from ``catalogue``, the one billing answered
    a change with, else this process's copy)."""
    ctx = context(request)
    account = await ctx.accounts.get(account_id)
    balance = await ctx.peers.balance(account.id)
    return answer(
        AccountWithBalanceAnswer(
            **AccountAnswer.of(account).model_dump(),
            balance_usd=balance.balance,
            available_usd=balance.available,
            owed_usd=owed(balance.balance),
            **terms_now(catalogue or ctx.catalogue.current, account),
        )
    )


async def get_account(request: Request) -> Response:
    acting(request)
    return await _with_balance(request, request.path_params["id"])


async def patch_account(request: Request) -> Response:
    acting(request)
    body = await read_body(request, PatchAccountBody)
    if not body.model_fields_set - {"effective_from"}:
        raise InvalidRequest('give "plan", "status", "limits" or "discount_bps"')
    ctx, account_id = context(request), request.path_params["id"]
    await ctx.accounts.get(account_id)
    if body.plan is not None:
        await known_plan(ctx, body.plan)
    changed = await change_account_terms(ctx, account_id, body)
    if body.plan is not None:
        await ctx.accounts.set_plan(account_id, body.plan)
    if body.status is not None:
        await ctx.accounts.set_status(account_id, body.status)
    return await _with_balance(request, account_id, changed.catalogue if changed else None)


async def adjust(request: Request) -> Response:
    """Without an Idempotency-Key every call is a new adjustment (a fresh key is made here);
    with one, a retry of the same key returns the first result and moves no money."""
    acting(request)
    body = await read_body(request, AdjustmentBody)
    ctx, account_id = context(request), request.path_params["id"]
    await ctx.accounts.get(account_id)
    key = request.headers.get("idempotency-key", "").strip() or f"auto-{uuid.uuid4().hex}"
    if len(key) > 200:
        raise InvalidRequest("Idempotency-Key is longer than 200 characters")
    reply = await ctx.peers.adjust(
        build(
            AdjustCommand,
            account_id=account_id,
            amount=body.amount_usd,
            reason=body.reason,
            idempotency_key=f"admin:{account_id}:{key}",
        )
    )
    return answer(
        AdjustmentAnswer(
            account_id=account_id,
            transfer_id=reply.transfer_id,
            balance_usd=reply.balance,
            available_usd=reply.available,
            replayed=reply.replayed,
        ),
        201,
    )


async def create_key(request: Request) -> Response:
    acting(request)
    body = await read_body(request, KeyCreateBody)
    # Operators are not held to the customer API's key cap.
    issued = await context(request).accounts.issue_key(
        request.path_params["id"], body.name, capped=False
    )
    return answer(
        KeyCreatedAnswer(
            id=issued.key.id,
            key=issued.secret,
            name=issued.key.name,
            created_at=issued.key.created_at,
        ),
        201,
    )


async def revoke_key(request: Request) -> Response:
    acting(request)
    await context(request).accounts.revoke_key(
        request.path_params["id"], request.path_params["key_id"]
    )
    return no_content()


async def invite(request: Request) -> Response:
    acting(request)
    invitation = await context(request).accounts.invite(request.path_params["id"])
    return answer(InvitationAnswer(token=invitation.token, expires_at=invitation.expires_at), 201)


async def deposit_addresses(request: Request) -> Response:
    acting(request)
    ctx = context(request)
    account = await ctx.accounts.get(request.path_params["id"])
    return answer(await ctx.peers.deposit_addresses(account.id))


async def deposits(request: Request) -> Response:
    acting(request)
    ctx = context(request)
    account = await ctx.accounts.get(request.path_params["id"])
    return answer(await ctx.peers.deposits(account.id))


async def set_rate(request: Request) -> Response:
    acting(request)
    body = await read_body(request, RateBody)
    reply = await context(request).peers.set_rate(SetRateCommand(asset=body.asset, usd=body.usd))
    return answer(RateAnswer(asset=reply.asset, usd=reply.usd, set_at=reply.set_at), 201)


async def sweep_plan(request: Request) -> Response:
    acting(request)
    body = await read_body(request, SweepPlanBody)
    query = SweepPlanQuery(destinations=body.destinations)
    return answer(await context(request).peers.sweep_plan(query))


_IDEMPOTENCY = (("Idempotency-Key", "makes a retry safe; without it each call is new"),)
_A = "/admin/v1/accounts"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", _A, create_account, "Create an account", "admin", "operator",
             CreateAccountBody, AccountAnswer, status=201, errors=(400, 409)),
    Endpoint("GET", _A + "/{id}", get_account, "An account with its balance", "admin",
             "operator", None, AccountWithBalanceAnswer, errors=(404, 503)),
    Endpoint("PATCH", _A + "/{id}", patch_account,
             "Set the plan (no charge), the status, or the account's own limits and discount",
             "admin", "operator", PatchAccountBody, AccountWithBalanceAnswer,
             errors=(400, 404, 503)),
    Endpoint("POST", _A + "/{id}/adjustments", adjust, "Credit or debit the balance", "admin",
             "operator", AdjustmentBody, AdjustmentAnswer, status=201,
             errors=(400, 402, 404, 409, 503), headers=_IDEMPOTENCY),
    Endpoint("POST", _A + "/{id}/keys", create_key, "Issue an API key (shown once)", "admin",
             "operator", KeyCreateBody, KeyCreatedAnswer, status=201, errors=(400, 404)),
    Endpoint("DELETE", _A + "/{id}/keys/{key_id}", revoke_key, "Revoke an API key", "admin",
             "operator", status=204, errors=(404,)),
    Endpoint("POST", _A + "/{id}/invitations", invite,
             "Invite the owner to set a password (one-time token, shown once)", "admin",
             "operator", None, InvitationAnswer, status=201, errors=(404,)),
    Endpoint("GET", _A + "/{id}/deposit-addresses", deposit_addresses,
             "Deposit addresses (empty while payments is not running)", "admin", "operator",
             None, DepositAddress, many=True, errors=(404,)),
    Endpoint("GET", _A + "/{id}/deposits", deposits,
             "Deposits (empty while payments is not running)", "admin", "operator", None,
             Deposit, many=True, errors=(404,)),
    Endpoint("POST", "/admin/v1/rates", set_rate, "Set a manual ETH/BTC rate", "admin",
             "operator", RateBody, RateAnswer, status=201, errors=(400, 503)),
    Endpoint("POST", "/admin/v1/sweep-plan", sweep_plan,
             "An unsigned sweep plan: balances per network and asset, gas needs, transfers",
             "admin", "operator", SweepPlanBody, SweepPlanReply, errors=(400, 503)),
)  # fmt: skip
