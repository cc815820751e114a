"""The customer API's mailed links: verify the email, ask for a new verification link, ask for a
password reset and set the new password with its link (docs/accounts.md "Email")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.http import answer, client_address, context, no_content, read_body
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.routes_customer import change, signed_in
from aiapi_accounts.schemas import (
    AcceptInvitationBody,
    EmailBody,
    MailAcceptedAnswer,
    SignInAnswer,
    TokenBody,
)

RESET_ASKED = "If this email has an account, a link to reset its password is on its way."
VERIFICATION_SENT = "A new verification link is on its way."


async def verify_email(request: Request) -> Response:
    body = await read_body(request, TokenBody)
    await context(request).mail.verify(body.token)
    return no_content()


async def resend_verification(request: Request) -> Response:
    account, _ = await change(request)
    await context(request).mail.resend_verification(account.id)
    return answer(MailAcceptedAnswer(message=VERIFICATION_SENT), 202)


async def request_password_reset(request: Request) -> Response:
    body = await read_body(request, EmailBody)
    await context(request).mail.request_password_reset(body.email, client_address(request))
    return answer(MailAcceptedAnswer(message=RESET_ASKED), 202)


async def reset_password(request: Request) -> Response:
    body = await read_body(request, AcceptInvitationBody)
    signed = await context(request).mail.reset_password(
        body.token, body.password, client_address(request), request.headers.get("user-agent", "")
    )
    return signed_in(request, signed)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/api/v1/auth/verify-email", verify_email,
             "Verify the email with the token of the mailed link", "none", "auth", TokenBody,
             status=204, errors=(400, 401)),
    Endpoint("POST", "/api/v1/account/verify-email", resend_verification,
             "Mail a new verification link (a few per hour)", "session", "account", None,
             MailAcceptedAnswer, status=202, errors=(401, 403, 409, 429)),
    Endpoint("POST", "/api/v1/auth/password-reset", request_password_reset,
             "Mail a password-reset link (same answer whether or not the email has an account)",
             "none", "auth", EmailBody, MailAcceptedAnswer, status=202, errors=(400, 429)),
    Endpoint("POST", "/api/v1/auth/password-reset/confirm", reset_password,
             "Set a new password with the mailed link's token and sign in (ends other sessions)",
             "none", "auth", AcceptInvitationBody, SignInAnswer, errors=(400, 401, 429)),
)  # fmt: skip
