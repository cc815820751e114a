"""What every page handler shares: the renderer, the signed-in viewer, redirects and the
answers to a form that failed (shown again with the reason, in the page's own layout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from aiapi_accounts.domain import Account, Session
from aiapi_accounts.errors import TooManyAttempts
from aiapi_accounts.http import context
from aiapi_accounts.pages.forms import read_form
from aiapi_accounts.pages.guard import (
    CSRF_FIELD,
    form_token,
    keep_form_token,
    tokens_match,
    viewer,
)
from aiapi_accounts.pages.render import Renderer


@dataclass(frozen=True)
class Viewer:
    account: Account
    session: Session


def local_path(candidate: str | None, default: str = "/") -> str:
    """Only a path on this site may be a redirect target (no ``//host``, no scheme)."""
    if candidate and candidate.startswith("/") and not candidate.startswith(("//", "/\\")):
        return candidate
    return default


def see_other(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


class Pages:
    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    async def viewer(self, request: Request) -> Viewer | None:
        found = await viewer(request)
        return Viewer(*found) if found else None

    def to_sign_in(self, request: Request) -> Response:
        return see_other("/sign-in?next=" + quote(request.url.path, safe="/"))

    async def signed_in_form(
        self, request: Request, *, change: bool = False
    ) -> tuple[Viewer, dict[str, str]] | Response:
        """The viewer and the posted form, or the answer when either is missing or forged. A
        ``change`` (a key, the password, the plan) counts against the account's writes per
        minute, as the same change through the JSON API does."""
        me = await self.viewer(request)
        if me is None:
            return self.to_sign_in(request)
        form = await read_form(request)
        if not tokens_match(form.get(CSRF_FIELD, ""), me.session.csrf_token):
            return self.show(request, "expired.html", me, "", status=403)
        if change:
            try:
                await context(request).accounts.count_write(me.account.id)
            except TooManyAttempts as exc:
                response = self.show(
                    request, "refused.html", me, "", exc.status, message=exc.message
                )
                response.headers.update(exc.headers)
                return response
        return me, form

    def show(
        self,
        request: Request,
        template: str,
        me: Viewer,
        active: str,
        status: int = 200,
        **values: Any,
    ) -> Response:
        return self.renderer.page(
            template,
            {
                "me": me.account,
                "csrf": me.session.csrf_token,
                # A banner on every page while the account must still verify its email.
                "unverified": context(request).mail.verification_required
                and not me.account.email_verified,
                "active": active,
                "path": request.url.path,
                "error": None,
                "notice": None,
                **values,
            },
            status,
        )

    def show_anonymous(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> Response:
        token = form_token(request)
        response = self.renderer.page(
            template,
            {
                "me": None,
                "csrf": token,
                "unverified": False,
                "mail": context(request).mail.enabled,
                "active": "",
                "path": request.url.path,
                "error": None,
                "notice": None,
                **values,
            },
            status,
        )
        keep_form_token(response, token, context(request).settings.cookie_secure)
        return response
