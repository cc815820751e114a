"""The keys page: list, create (the key shown once), revoke after a confirmation page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.http import context
from aiapi_accounts.pages.view import Pages, Viewer, see_other

MAX_NAME = 100


async def keys_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    return await _keys(request, pages, me)


async def _keys(
    request: Request,
    pages: Pages,
    me: Viewer,
    *,
    error: str | None = None,
    name: str = "",
    created: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    keys = await context(request).accounts.list_keys(me.account.id)
    return pages.show(
        request,
        "keys.html",
        me,
        "keys",
        status,
        keys=keys,
        error=error,
        name=name,
        created=created,
    )


async def create_key(request: Request, pages: Pages) -> Response:
    checked = await pages.signed_in_form(request, change=True)
    if isinstance(checked, Response):
        return checked
    me, form = checked
    name = form.get("name", "").strip()
    if not 1 <= len(name) <= MAX_NAME:
        return await _keys(
            request,
            pages,
            me,
            error=f"A key needs a name of 1 to {MAX_NAME} characters.",
            name=name[:MAX_NAME],
            status=400,
        )
    if me.account.status != "active":
        return await _keys(request, pages, me, error="The account is suspended.", status=403)
    try:
        issued = await context(request).accounts.issue_key(me.account.id, name)
    except AccountsError as exc:
        return await _keys(request, pages, me, error=exc.message, name=name, status=exc.status)
    # Answered directly (no redirect): the key appears in this one response and nowhere else.
    return await _keys(request, pages, me, created=(issued.key.name, issued.secret), status=201)


async def revoke_page(request: Request, pages: Pages) -> Response:
    me = await pages.viewer(request)
    if me is None:
        return pages.to_sign_in(request)
    key_id = request.path_params["key_id"]
    keys = await context(request).accounts.list_keys(me.account.id)
    found = next((k for k in keys if k.id == key_id and k.revoked_at is None), None)
    if found is None:
        return pages.show(request, "missing.html", me, "keys", 404, what="key")
    return pages.show(request, "revoke.html", me, "keys", key=found)


async def revoke_key(request: Request, pages: Pages) -> Response:
    checked = await pages.signed_in_form(request, change=True)
    if isinstance(checked, Response):
        return checked
    me, _ = checked
    try:
        await context(request).accounts.revoke_key(me.account.id, request.path_params["key_id"])
    except AccountsError:
        return pages.show(request, "missing.html", me, "keys", 404, what="key")
    return see_other("/keys")
