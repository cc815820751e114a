"""Who is looking at a page, and whether a form post may act for them.

Signed in, a form proves it came from our own page by echoing the session's CSRF token (the one
the JSON API takes as ``X-CSRF-Token``). Before sign-in there is no session, so sign-in and
sign-up forms use a double-submit token: a random value in an HttpOnly cookie that the page also
puts in a hidden field. A cross-site form can set neither, which stops login CSRF (a victim signed
into the attacker's account without noticing).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.domain import Account, Session, new_secret_token
from aiapi_accounts.http import SESSION_COOKIE, context

FORM_COOKIE = "aiapi_form"
CSRF_FIELD = "csrf_token"
_FORM_COOKIE_AGE_S = 3600


async def viewer(request: Request) -> tuple[Account, Session] | None:
    """The signed-in account and its session, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await context(request).accounts.session(token)


def tokens_match(sent: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def form_token(request: Request) -> str:
    """The pre-session token of this browser (kept from its cookie, else a new one)."""
    current = request.cookies.get(FORM_COOKIE, "")
    return current if len(current) >= 32 else new_secret_token()


def keep_form_token(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(
        FORM_COOKIE,
        token,
        max_age=_FORM_COOKIE_AGE_S,
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )


def anonymous_form_ok(request: Request, form: dict[str, str]) -> bool:
    return tokens_match(form.get(CSRF_FIELD, ""), request.cookies.get(FORM_COOKIE, ""))
