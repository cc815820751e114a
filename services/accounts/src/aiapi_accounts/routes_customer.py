"""The customer API under ``/api/v1`` (the dashboard's and scripts' API): sign-up and sign-in,
profile, sessions, password, keys, plan, balance and usage (billing), deposits (payments)."""

from __future__ import annotations

from aiapi_shared.billing_api import DailyUsageQuery, DailyUsageReply, LedgerQuery, LedgerReply
from aiapi_shared.payments_api import Deposit, DepositAddress
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.commands import SignedIn
from aiapi_accounts.domain import Account, Session
from aiapi_accounts.errors import Forbidden, InvalidRequest
from aiapi_accounts.http import (
    answer,
    clear_session_cookies,
    client_address,
    context,
    no_content,
    read_body,
    require_session,
    set_session_cookies,
)
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.schemas import (
    AcceptInvitationBody,
    AccountAnswer,
    BalanceAnswer,
    CredentialsBody,
    KeyAnswer,
    KeyCreateBody,
    KeyCreatedAnswer,
    PasswordChangeBody,
    PlanAnswer,
    SessionAnswer,
    SignInAnswer,
    SignUpAnswer,
    UpgradeAnswer,
    UpgradeBody,
)


async def change(request: Request) -> tuple[Account, Session]:
    """The signed-in account making a change, counted against its writes per minute (429
    beyond). Ending sessions and signing out are not counted: they must always work."""
    account, session = await require_session(request)
    await context(request).accounts.count_write(account.id)
    return account, session


async def sign_up(request: Request) -> Response:
    body = await read_body(request, CredentialsBody)
    await context(request).mail.sign_up(body.email, body.password, client_address(request))
    return answer(SignUpAnswer(), 202)


async def sign_in(request: Request) -> Response:
    body = await read_body(request, CredentialsBody)
    signed = await context(request).accounts.sign_in(
        body.email,
        body.password,
        client_address(request),
        request.headers.get("user-agent", ""),
    )
    return signed_in(request, signed)


def signed_in(request: Request, signed: SignedIn) -> Response:
    """The sign-in answer and cookies (sign-in and accepting an invitation answer alike)."""
    settings = context(request).settings
    response = answer(
        SignInAnswer(
            account=AccountAnswer.of(signed.account),
            session_id=signed.session.id,
            csrf_token=signed.session.csrf_token,
            expires_at=signed.session.expires_at,
        )
    )
    set_session_cookies(
        response,
        signed.token,
        signed.session.csrf_token,
        settings.session_ttl_s,
        settings.cookie_secure,
    )
    return response


async def accept_invitation(request: Request) -> Response:
    body = await read_body(request, AcceptInvitationBody)
    signed = await context(request).accounts.accept_invitation(
        body.token,
        body.password,
        client_address(request),
        request.headers.get("user-agent", ""),
    )
    return signed_in(request, signed)


async def sign_out(request: Request) -> Response:
    account, session = await require_session(request)
    ctx = context(request)
    await ctx.accounts.end_session(account.id, session.id)
    response = no_content()
    clear_session_cookies(response, ctx.settings.cookie_secure)
    return response


async def plans(request: Request) -> Response:
    return answer(
        [
            PlanAnswer(
                id=p.id,
                display_name=p.display_name,
                price_usd=p.price_usd,
                requests_per_minute=p.requests_per_minute,
                tokens_per_minute=p.tokens_per_minute,
                discount_bps=p.discount_bps,
            )
            for p in context(request).catalogue.choosable()
        ]
    )


async def profile(request: Request) -> Response:
    account, _ = await require_session(request)
    return answer(AccountAnswer.of(account))


async def change_password(request: Request) -> Response:
    account, session = await change(request)
    body = await read_body(request, PasswordChangeBody)
    await context(request).accounts.change_password(
        account.id, session.id, body.current_password, body.new_password
    )
    return no_content()


async def sessions(request: Request) -> Response:
    account, session = await require_session(request)
    found = await context(request).accounts.sessions(account.id)
    return answer([SessionAnswer.of(s, session.id) for s in found])


async def end_session(request: Request) -> Response:
    account, _ = await require_session(request)
    await context(request).accounts.end_session(account.id, request.path_params["session_id"])
    return no_content()


async def list_keys(request: Request) -> Response:
    account, _ = await require_session(request)
    keys = await context(request).accounts.list_keys(account.id)
    return answer([KeyAnswer.of(k) for k in keys])


async def create_key(request: Request) -> Response:
    account, _ = await change(request)
    if account.status != "active":
        raise Forbidden("the account is suspended")
    body = await read_body(request, KeyCreateBody)
    issued = await context(request).accounts.issue_key(account.id, body.name)
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
    account, _ = await change(request)
    await context(request).accounts.revoke_key(account.id, request.path_params["key_id"])
    return no_content()


async def upgrade(request: Request) -> Response:
    """Billing debits the plan's price once and confirms; then the plan switches. If the reply
    is lost, billing's PlanPurchased event switches it (see consumers)."""
    account, _ = await change(request)
    body = await read_body(request, UpgradeBody)
    if account.status != "active":
        raise Forbidden("the account is suspended")
    ctx = context(request)
    plan = ctx.catalogue.choosable_plan(body.plan)
    reply = await ctx.peers.purchase_plan(account.id, plan.id)
    account = await ctx.accounts.set_plan(account.id, plan.id)
    return answer(
        UpgradeAnswer(
            account=AccountAnswer.of(account),
            price_usd=reply.price,
            balance_usd=reply.balance,
            already_owned=reply.already_owned,
        )
    )


async def balance(request: Request) -> Response:
    account, _ = await require_session(request)
    reply = await context(request).peers.balance(account.id)
    return answer(BalanceAnswer(balance_usd=reply.balance, available_usd=reply.available))


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None


async def ledger(request: Request) -> Response:
    account, _ = await require_session(request)
    limit = _int_param(request, "limit", 50)
    try:
        query = LedgerQuery(
            account_id=account.id, limit=limit, before_id=_int_param(request, "before_id", None)
        )
    except ValueError:
        raise InvalidRequest("limit must be between 1 and 500") from None
    return answer(await context(request).peers.ledger(query))


async def usage(request: Request) -> Response:
    account, _ = await require_session(request)
    try:
        query = DailyUsageQuery(account_id=account.id, days=_int_param(request, "days", 30))
    except ValueError:
        raise InvalidRequest("days must be between 1 and 366") from None
    return answer(await context(request).peers.daily_usage(query))


async def deposit_addresses(request: Request) -> Response:
    account, _ = await require_session(request)
    return answer(await context(request).addresses.addresses(account.id))


async def deposits(request: Request) -> Response:
    account, _ = await require_session(request)
    return answer(await context(request).peers.deposits(account.id))


_W = (401, 403)  # a cookie-authenticated write: no session, or no CSRF token
_P = "/api/v1/account"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/api/v1/auth/sign-up", sign_up, "Sign up (same answer whether or not the email was free)",
             "none", "auth", CredentialsBody, SignUpAnswer, status=202, errors=(400, 429)),
    Endpoint("POST", "/api/v1/auth/sign-in", sign_in, "Sign in; sets the session and CSRF cookies",
             "none", "auth", CredentialsBody, SignInAnswer, errors=(400, 401, 429)),
    Endpoint("POST", "/api/v1/auth/accept-invitation", accept_invitation,
             "Set the password with an operator's invitation and sign in (same answer as sign-in)",
             "none", "auth", AcceptInvitationBody, SignInAnswer, errors=(400, 401, 429)),
    Endpoint("POST", "/api/v1/auth/sign-out", sign_out, "End this session", "session", "auth",
             status=204, errors=_W),
    Endpoint("GET", "/api/v1/plans", plans, "The plans customers may choose", "none", "account", None,
             PlanAnswer, many=True),
    Endpoint("GET", _P, profile, "The signed-in account", "session", "account", None, AccountAnswer),
    Endpoint("POST", _P + "/password", change_password, "Change the password (ends other sessions)",
             "session", "account", PasswordChangeBody, status=204, errors=(400, *_W, 429)),
    Endpoint("GET", _P + "/sessions", sessions, "Open sessions", "session", "account", None,
             SessionAnswer, many=True),
    Endpoint("DELETE", _P + "/sessions/{session_id}", end_session, "End a session", "session",
             "account", status=204, errors=(*_W, 404)),
    Endpoint("GET", _P + "/keys", list_keys, "API keys (never the key itself)", "session", "keys",
             None, KeyAnswer, many=True),
    Endpoint("POST", _P + "/keys", create_key, "Create an API key (shown once)", "session", "keys",
             KeyCreateBody, KeyCreatedAnswer, status=201, errors=(400, *_W, 409, 429)),
    Endpoint("DELETE", _P + "/keys/{key_id}", revoke_key, "Revoke an API key", "session", "keys",
             status=204, errors=(*_W, 404, 429)),
    Endpoint("POST", _P + "/plan", upgrade, "Choose a plan, paid once from the balance", "session",
             "plan", UpgradeBody, UpgradeAnswer, errors=(400, 402, *_W, 429, 503)),
    Endpoint("GET", _P + "/balance", balance, "Balance (settled) and available", "session",
             "billing", None, BalanceAnswer, errors=(503,)),
    Endpoint("GET", _P + "/ledger", ledger, "Ledger entries, newest first (?limit=&before_id=)",
             "session", "billing", None, LedgerReply, errors=(400, 503)),
    Endpoint("GET", _P + "/usage", usage, "Usage per day and model (?days=)", "session", "billing",
             None, DailyUsageReply, errors=(400, 503)),
    Endpoint("GET", _P + "/deposit-addresses", deposit_addresses, "Deposit addresses", "session",
             "payments", None, DepositAddress, many=True, errors=(429,)),
    Endpoint("GET", _P + "/deposits", deposits, "Deposits", "session", "payments", None, Deposit,
             many=True),
)  # fmt: skip
