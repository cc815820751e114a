"""The pages behind mailed links: verify the email (and ask for a new link), forgot the password,
choose a new one."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError, InvalidRequest
from aiapi_accounts.http import client_address, context
from aiapi_accounts.pages.auth import signed_in_to
from aiapi_accounts.pages.forms import read_form
from aiapi_accounts.pages.guard import anonymous_form_ok
from aiapi_accounts.pages.view import Pages
from aiapi_accounts.routes_mail import RESET_ASKED, VERIFICATION_SENT

_MAX_TOKEN = 200
EXPIRED_FORM = "This form had expired; please try again."


async def verify_email(request: Request, pages: Pages) -> Response:
    """The link in the verification mail. Following it is the verification (mail scanners
    that open links first can only verify an address that received the mail)."""
    token = request.query_params.get("token", "")[:_MAX_TOKEN]
    me = await pages.viewer(request)
    try:
        await context(request).mail.verify(token)
    except AccountsError as exc:
        values: dict[str, Any] = {
            "heading": "Verification failed",
            "error": "This link is invalid, used or expired.",
            "onward": "/account" if me else "/sign-in",
            "onward_label": "Ask for a new link on the account page",
        }
        if me is not None:
            return pages.show(request, "mail_link.html", me, "", exc.status, **values)
        return pages.show_anonymous(request, "mail_link.html", exc.status, **values)
    values = {
        "heading": "Email verified",
        "notice": "Your email address is verified: you can create API keys now.",
        "onward": "/keys",
        "onward_label": "Create an API key",
    }
    me = await pages.viewer(request)  # read again: the banner goes with the verification
    if me is not None:
        return pages.show(request, "mail_link.html", me, "", **values)
    return pages.show_anonymous(request, "mail_link.html", **values)


async def resend_verification(request: Request, pages: Pages) -> Response:
    checked = await pages.signed_in_form(request, change=True)
    if isinstance(checked, Response):
        return checked
    me, _ = checked
    values: dict[str, Any] = {"heading": "Verify your email", "onward": "/", "onward_label": "Back"}
    try:
        await context(request).mail.resend_verification(me.account.id)
    except AccountsError as exc:
        response = pages.show(
            request, "mail_link.html", me, "", exc.status, error=exc.message, **values
        )
        response.headers.update(exc.headers)
        return response
    return pages.show(request, "mail_link.html", me, "", notice=VERIFICATION_SENT, **values)


async def forgot_page(request: Request, pages: Pages) -> Response:
    return pages.show_anonymous(request, "forgot_password.html", email="")


async def forgot(request: Request, pages: Pages) -> Response:
    form = await read_form(request)
    email = form.get("email", "")[:254]
    if not anonymous_form_ok(request, form):
        return pages.show_anonymous(
            request, "forgot_password.html", 403, email=email, error=EXPIRED_FORM
        )
    try:
        await context(request).mail.request_password_reset(email, client_address(request))
    except AccountsError as exc:
        response = pages.show_anonymous(
            request, "forgot_password.html", exc.status, email=email, error=exc.message
        )
        response.headers.update(exc.headers)
        return response
    return pages.show_anonymous(request, "forgot_password.html", email=email, notice=RESET_ASKED)


async def reset_page(request: Request, pages: Pages) -> Response:
    token = request.query_params.get("token", "")[:_MAX_TOKEN]
    if not await context(request).mail.reset_link_valid(token):
        return pages.show_anonymous(
            request,
            "reset_password.html",
            401,
            token="",
            error="This link is invalid, used or expired.",
        )
    return pages.show_anonymous(request, "reset_password.html", token=token)


async def reset(request: Request, pages: Pages) -> Response:
    form = await read_form(request)
    token = form.get("token", "")[:_MAX_TOKEN]
    if not anonymous_form_ok(request, form):
        return pages.show_anonymous(
            request, "reset_password.html", 403, token=token, error=EXPIRED_FORM
        )
    ctx = context(request)
    new = form.get("new_password", "")
    try:
        if new != form.get("new_password_again", new):
            raise InvalidRequest("The two passwords differ.")
        signed = await ctx.mail.reset_password(
            token, new, client_address(request), request.headers.get("user-agent", "")
        )
    except AccountsError as exc:
        # A bad token cannot be retried with another password: show the way to a new link.
        keep = token if exc.status == 400 else ""
        response = pages.show_anonymous(
            request, "reset_password.html", exc.status, token=keep, error=exc.message
        )
        response.headers.update(exc.headers)
        return response
    return signed_in_to(request, signed, "/")
