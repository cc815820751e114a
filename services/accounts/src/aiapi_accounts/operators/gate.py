"""The one gate of the operator listener: every request passes it before any route runs.

1. **Who**: ``Authorization: Bearer`` with the bootstrap token (``AIAPI_ADMIN_TOKEN``) or an
   operator's token, else the console's session cookie. Without one: 401 in the operator API's
   error format (a console page redirects to the sign-in page instead). Only the paths in
   :data:`ANONYMOUS` (sign-in, the API description, static files) are open, and a path no
   route serves gets the app's plain 404.
2. **CSRF**: a write authenticated by the session cookie must carry the session's CSRF token,
   in the ``X-CSRF-Token`` header or the form's ``csrf_token`` field (read here, so no console
   page can forget it).
3. **Role by method**: a ``support`` operator may only send GET and HEAD; anything else gets 403
   and never reaches the route (:data:`ANY_ROLE` lists the writes every role may make: signing
   out). A new route is covered without doing anything.
4. **Audit**: every write by an identified operator, answered or refused, is appended to the
   audit log with who, when, from where, what (method, route template, path parameters, the body
   with secrets replaced), the answer's status and why (a ``reason`` field, else the
   ``Aiapi-Reason`` header). The entry is written before the answer is sent: an operator who sees
   an answer knows it is on record.

Routes ask for the acting operator with :func:`aiapi_accounts.http.acting`; it fails closed (401) on a request that
did not come through this gate (a route mounted elsewhere by mistake).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiapi_accounts.errors import AccountsError, Forbidden, TooLarge, Unauthenticated
from aiapi_accounts.http import (
    ACTING,
    CSRF_HEADER,
    MAX_BODY_BYTES,
    client_address,
    context,
    error_body,
)
from aiapi_accounts.operators import audit
from aiapi_accounts.operators.domain import READ_METHODS, Acting, AuditRecord, may
from aiapi_accounts.pages.guard import tokens_match

log = logging.getLogger("aiapi.accounts.operators")

OPERATOR_COOKIE = "aiapi_operator"
CSRF_FIELD = "csrf_token"
SIGN_IN_PATH = "/admin/sign-in"
API_PREFIX = "/admin/v1/"

# (method or "*", path or prefix ending in "/"): open without credentials.
ANONYMOUS: tuple[tuple[str, str], ...] = (
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", SIGN_IN_PATH),
    ("POST", SIGN_IN_PATH),
    ("GET", "/static/"),
)
# Writes any signed-in operator may make whatever the role (still audited).
ANY_ROLE: frozenset[tuple[str, str]] = frozenset({("POST", "/admin/sign-out")})

PageRefusal = Callable[[Request, AccountsError], Response]


def is_anonymous(method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    for allowed_method, allowed in ANONYMOUS:
        if method != allowed_method:
            continue
        if path == allowed or (allowed.endswith("/") and path.startswith(allowed)):
            return True
    return False


def _is_page(path: str) -> bool:
    return not path.startswith(API_PREFIX)


def route_of(scope: Scope) -> tuple[str, dict[str, str]] | None:
    """The route template a request matches and its path values; None when no route does."""
    app = scope.get("app")
    for route in getattr(app, "routes", ()):
        match, child = route.matches(scope)
        if match != Match.NONE:
            params = child.get("path_params", {})
            template = str(getattr(route, "path", scope["path"]))
            return template, {k: audit.text(str(v)) for k, v in params.items()}
    return None


class OperatorGate:
    """ASGI middleware of the admin app (see the module's description)."""

    def __init__(self, app: ASGIApp, refuse_page: PageRefusal | None = None) -> None:
        self.app = app
        self._refuse_page = refuse_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_anonymous(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        if route_of(scope) is None:  # nothing is served there: the app's plain 404
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        who = await self._identify(request)
        if who is None:
            await self._unauthenticated(request)(scope, receive, send)
            return
        scope.setdefault("state", {})[ACTING] = who
        if scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        await self._write(scope, receive, send, request, who)

    async def _identify(self, request: Request) -> Acting | None:
        operators = context(request).operators
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme:
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return await operators.by_bearer(token.strip())
        cookie = request.cookies.get(OPERATOR_COOKIE)
        return await operators.by_session(cookie) if cookie else None

    def _unauthenticated(self, request: Request) -> Response:
        path = request.url.path
        if _is_page(path):
            return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(path, safe='/')}", 303)
        return self._refusal(
            request, Unauthenticated("a valid operator token is required (Authorization: Bearer)")
        )

    def _refusal(self, request: Request, error: AccountsError) -> Response:
        if self._refuse_page is not None and _is_page(request.url.path):
            return self._refuse_page(request, error)
        return JSONResponse(error_body(error.type, error.message), error.status, error.headers)

    async def _write(
        self, scope: Scope, receive: Receive, send: Send, request: Request, who: Acting
    ) -> None:
        body, complete = await _bounded(request, receive)
        refusal = _check(scope["method"], scope["path"], request, who, body, complete)
        recorder = _Recorder(send, request, who, body)
        if refusal is not None:
            await self._refusal(request, refusal)(scope, receive, recorder.send)
            return
        try:
            await self.app(scope, _replay(body, receive), recorder.send)
        except Exception:
            if not recorder.recorded:
                await recorder.record(500, None)
            raise


def _check(
    method: str, path: str, request: Request, who: Acting, body: bytes, complete: bool
) -> AccountsError | None:
    """Why a write must not reach its route, or None."""
    if not complete:
        return TooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")
    if who.session is not None:
        sent = request.headers.get(CSRF_HEADER) or _form_field(body, request, CSRF_FIELD)
        if not tokens_match(sent or "", who.session.csrf_token):
            return Forbidden("missing or wrong CSRF token (X-CSRF-Token or the form's field)")
    if not may(who.operator.role, method) and (method, path) not in ANY_ROLE:
        return Forbidden(f"the {who.operator.role} role may only read (GET, HEAD)")
    return None


def _form_field(body: bytes, request: Request, name: str) -> str | None:
    data = audit.parsed_body(body, request.headers.get("content-type", ""))
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


async def _bounded(request: Request, receive: Receive) -> tuple[bytes, bool]:
    """The request body, at most MAX_BODY_BYTES of it; False when there was more (a declared
    length over the bound is refused without reading anything)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return b"", False
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body), True
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return bytes(body[:MAX_BODY_BYTES]), False
        if not message.get("more_body", False):
            return bytes(body), True


def _replay(body: bytes, receive: Receive) -> Receive:
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class _Recorder:
    """Holds a write's answer until its audit entry is written, then sends it on."""

    def __init__(self, send: Send, request: Request, who: Acting, body: bytes) -> None:
        self._send = send
        self._request = request
        self._who = who
        self._body = body
        self._held: list[Message] = []
        self.recorded = False

    async def send(self, message: Message) -> None:
        self._held.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            start = self._held[0]
            answer = b"".join(m.get("body", b"") for m in self._held[1:])
            status = int(start.get("status", 500))
            await self.record(status, _created_id(answer) if status == 201 else None)
            for held in self._held:
                await self._send(held)
            self._held = []

    async def record(self, status: int, created_id: str | None) -> None:
        self.recorded = True
        request, who = self._request, self._who
        route, params = route_of(request.scope) or (audit.text(request.url.path), {})
        kind = request.headers.get("content-type", "")
        target: dict[str, str] = dict(params)
        if created_id is not None:
            target["created_id"] = created_id
        entry = AuditRecord(
            operator_id=who.operator.id,
            operator_name=who.operator.name,
            source=client_address(request),
            method=request.method,
            route=route,
            target=target,
            account_id=audit.account_of(route, params, created_id),
            status=status,
            summary=audit.summary(self._body, kind),
            reason=audit.reason(self._body, kind, request.headers.get(audit.REASON_HEADER)),
        )
        try:
            await context(request).operators.record(entry)
        except Exception as exc:  # noqa: BLE001 (the write is done; say loudly that it is unrecorded)
            log.error(
                "audit entry NOT written for %s %s by %s: %s",
                entry.method,
                entry.route,
                entry.operator_id,
                type(exc).__name__,
            )


def _created_id(answer: bytes) -> str | None:
    try:
        data: Any = json.loads(answer) if answer else None
    except (ValueError, RecursionError):
        return None
    found = data.get("id") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None
