"""HTTP plumbing shared by the route modules: bodies in, JSON out, the acting operator, session
auth.

CSRF: a session cookie alone never authorises a write. Sign-in returns a per-session CSRF token
(in the answer and in the readable ``aiapi_csrf`` cookie); every POST/PATCH/DELETE authenticated
by the session cookie must echo it in the ``X-CSRF-Token`` header, and it must equal the token
stored with the session server-side. A cross-site form or fetch cannot read it, so it cannot
forge a write. The session cookie is also ``SameSite=Lax`` and ``HttpOnly``.
"""

from __future__ import annotations

import hmac
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aiapi_accounts.clientaddr import client_ip
from aiapi_accounts.context import Context
from aiapi_accounts.domain import Account, Session
from aiapi_accounts.errors import Forbidden, InvalidRequest, TooLarge, Unauthenticated
from aiapi_accounts.operators.domain import Acting

M = TypeVar("M", bound=BaseModel)

SESSION_COOKIE = "aiapi_session"
CSRF_COOKIE = "aiapi_csrf"
CSRF_HEADER = "x-csrf-token"
MAX_BODY_BYTES = 64 * 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def context(request: Request) -> Context:
    # Set by the service's start, which the runner awaits before it opens any listener.
    ctx: Context | None = request.app.state.service.ctx
    assert ctx is not None, "Service.start() first"
    return ctx


async def read_body(request: Request, model: type[M]) -> M:
    body = await bounded_body(request)
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise InvalidRequest(f"invalid body: {_problems(exc, 'body')}") from None


def build(kind: type[M], /, **fields: Any) -> M:
    """A command built from the request's values (path, headers, body): 400 when they do not fit
    it (a model id of the wrong shape in the path, an over-long idempotency key)."""
    try:
        return kind(**fields)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid request: {_problems(exc, 'request')}") from None


def _problems(exc: ValidationError, whole: str) -> str:
    # Never echo the input: it may be a password.
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


async def bounded_body(request: Request) -> bytes:
    """The body, refused with 413 by its declared length at once, or as soon as a streamed
    (chunked) body passes the bound: never more than MAX_BODY_BYTES is held, nor parsed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> TooLarge:
    return TooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")


def answer(
    content: BaseModel | list[Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    if isinstance(content, list):
        data: Any = [item.model_dump(mode="json") for item in content]
    else:
        data = content.model_dump(mode="json")
    return JSONResponse(data, status_code=status, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


ACTING = "acting"  # the request state's key for the operator the gate let in


def acting(request: Request) -> Acting:
    """The operator behind a request on the operator listener, as its gate established it
    (:mod:`aiapi_accounts.operators.gate`: authenticated, the role allowed this method). Fails
    closed (401) on a request that did not come through the gate."""
    found = request.scope.get("state", {}).get(ACTING)
    if not isinstance(found, Acting):
        raise Unauthenticated("a valid operator token is required (Authorization: Bearer ...)")
    return found


def error_body(error_type: str, message: str) -> dict[str, dict[str, str]]:
    """The customer and operator APIs' error shape."""
    return {"error": {"type": error_type, "message": message}}


async def require_session(request: Request) -> tuple[Account, Session]:
    """The signed-in account; a write must also carry the session's CSRF token."""
    token = request.cookies.get(SESSION_COOKIE)
    found = await context(request).accounts.session(token) if token else None
    if found is None:
        raise Unauthenticated("sign in first")
    account, session = found
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise Forbidden("missing or wrong X-CSRF-Token header")
    return account, session


def set_session_cookies(
    response: Response, token: str, csrf_token: str, max_age_s: int, secure: bool
) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age_s, httponly=True, secure=secure, samesite="lax"
    )
    # Readable by the dashboard's script on purpose: it echoes it as X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE, csrf_token, max_age=max_age_s, httponly=False, secure=secure, samesite="lax"
    )


def clear_session_cookies(response: Response, secure: bool) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, secure=secure, httponly=name == SESSION_COOKIE, samesite="lax")


def client_address(request: Request) -> str:
    """The client's address; forwarding headers count only from AIAPI_TRUSTED_PROXIES."""
    settings = context(request).settings
    header = settings.forwarded_header
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.getlist(header), settings.proxy_networks, header)
