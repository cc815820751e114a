"""Sign-up, sign-in and sign-out pages; the account page (password, open sessions)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.commands import SignedIn
from aiapi_accounts.domain import DEFAULT_PLAN
from aiapi_accounts.errors import AccountsError, InvalidRequest, NotFound
from aiapi_accounts.http import (
    clear_session_cookies,
    client_address,
    context,
    set_session_cookies,
)
from aiapi_accounts.pages.forms import read_form
from aiapi_accounts.pages.guard import anonymous_form_ok
from aiapi_accounts.pages.view import Pages, Viewer, local_path, see_other


async def sign_in_page(request: Request, pages: Pages) -> Response:
    if await pages.viewer(request) is not None:
        return see_other(local_path(request.query_params.get("next")))
    return pages.show_anonymous(
        request,
        "sign_in.html",
        next=local_path(request.query_params.get("next")),
        email="",
        error=None,
        notice=None,
    )


async def sign_in(request: Request, pages: Pages) -> Response:
    form = await read_form(request)
    target = local_path(form.get("next"))
    email = form.get("email", "")[:254]
    if not anonymous_form_ok(request, form):
        return pages.show_anonymous(
            request,
            "sign_in.html",
            403,
            next=target,
            email=email,
            notice=None,
            error="This form had expired; please try again.",
        )
    ctx = context(request)
    try:
        signed = await ctx.accounts.sign_in(
            email,
            form.get("password", ""),
            client_address(request),
            request.headers.get("user-agent", ""),
        )
    except AccountsError as exc:
        response = pages.show_anonymous(
            request,
            "sign_in.html",
            exc.status,
            next=target,
            email=email,
            notice=None,
            error=exc.message,
        )
        response.headers.update(exc.headers)
        return response
    return signed_in_to(request, signed, target)


def signed_in_to(request: Request, signed: SignedIn, target: str) -> Response:
    """The redirect after signing in (sign-in, password reset), with the session cookies."""
    settings = context(request).settings
    response = see_other(target)
    set_session_cookies(
        response,
        signed.token,
        signed.session.csrf_token,
        settings.session_ttl_s,
        settings.cookie_secure,
    )
    return response


async def sign_up_page(request: Request, pages: Pages) -> Response:
    if await pages.viewer(request) is not None:
        return see_other("/")
    offered = context(request).catalogue.choosable()
    plan = request.query_params.get("plan", DEFAULT_PLAN)
    return pages.show_anonymous(
        request,
        "sign_up.html",
        email="",
        error=None,
        plans=offered,
        plan=plan if plan in {p.id for p in offered} else DEFAULT_PLAN,
    )


async def sign_up(request: Request, pages: Pages) -> Response:
    form = await read_form(request)
    email = form.get("email", "")[:254]
    ctx = context(request)
    offered = ctx.catalogue.choosable()
    plan = form.get("plan", DEFAULT_PLAN)
    plan = plan if plan in {p.id for p in offered} else DEFAULT_PLAN

    def again(status: int, error: str) -> Response:
        return pages.show_anonymous(
            request,
            "sign_up.html",
            status,
            email=email,
            error=error,
            plans=offered,
            plan=plan,
        )

    if not anonymous_form_ok(request, form):
        return again(403, "This form had expired; please try again.")
    password = form.get("password", "")
    if password != form.get("password_again", password):
        return again(400, "The two passwords differ.")
    try:
        await ctx.mail.sign_up(email, password, client_address(request))
    except AccountsError as exc:
        response = again(exc.status, exc.message)
        response.headers.update(exc.headers)
        return response
    # The same answer whether or not the email was free (no account enumeration). Every account
    # starts on the default plan; another is bought from the balance, so choosing one at sign-up
    # lands on the plan page after the first sign-in.
    return pages.show_anonymous(
        request,
        "sign_in.html",
        next="/plan" if plan != DEFAULT_PLAN else "/",
        email=email,
        error=None,
        notice="If this email was free, its account exists now: sign in to use it."
        + (
            " A link to verify the address is on its way; follow it before creating API keys."
            if ctx.mail.verification_required
            else ""
        ),
    )


async def sign_out(request: Request, pages: Pages) -> Response:
    checked = await pages.signed_in_form(request)
    if isinstance(checked, Response):
        return checked
    me, _ = checked
    ctx = context(request)
    await ctx.accounts.end_session(me.account.id, me.session.id)
    response = see_other("/sign-in")
    clear_session_cookies(response, ctx.settings.cookie_secure)
    return response


async def account_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    return await _account(request, pages, me, None, None)


async def _account(
    request: Request,
    pages: Pages,
    me: Viewer,
    error: str | None,
    notice: str | None,
    status: int = 200,
) -> Response:
    sessions = await context(request).accounts.sessions(me.account.id)
    return pages.show(
        request,
        "account.html",
        me,
        "account",
        status,
        sessions=sessions,
        current=me.session.id,
        error=error,
        notice=notice,
    )


async def change_password(request: Request, pages: Pages) -> Response:
    checked = await pages.signed_in_form(request, change=True)
    if isinstance(checked, Response):
        return checked
    me, form = checked
    new = form.get("new_password", "")
    try:
        if new != form.get("new_password_again", new):
            raise InvalidRequest("The two new passwords differ.")
        await context(request).accounts.change_password(
            me.account.id, me.session.id, form.get("current_password", ""), new
        )
    except AccountsError as exc:
        return await _account(request, pages, me, exc.message, None, exc.status)
    return await _account(
        request,
        pages,
        me,
        None,
        "Password changed. Every other session was signed out.",
    )


async def end_session(request: Request, pages: Pages) -> Response:
    checked = await pages.signed_in_form(request)
    if isinstance(checked, Response):
        return checked
    me, _ = checked
    session_id = request.path_params["session_id"]
    try:
        await context(request).accounts.end_session(me.account.id, session_id)
    except NotFound as exc:
        return await _account(request, pages, me, exc.message, None, 404)
    if session_id == me.session.id:
        response = see_other("/sign-in")
        clear_session_cookies(response, context(request).settings.cookie_secure)
        return response
    return see_other("/account")
