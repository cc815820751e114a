"""The console's upstream pool page (``/admin/upstream``): the keys with their health per edge,
errors and spend; add one (the key typed into a password field and never shown again), change
its weight and models, disable or enable it, test it through an edge, remove it after a
confirmation. Each action is the operator API's (``/admin/v1/upstream-keys``, the same bodies
and :class:`~aiapi_accounts.upstream_pool.UpstreamPool`) and ``aiapi admin upstream-keys``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError
from aiapi_accounts.http import build
from aiapi_accounts.operators.console_forms import change_form, done_notice, kept, number, words
from aiapi_accounts.pages.view import see_other
from aiapi_accounts.routes_upstream import UpstreamKeyCreateBody, UpstreamKeyPatchBody, pool_of
from aiapi_accounts.upstream_pool import KeyChange

if TYPE_CHECKING:  # the console's table imports this module
    from aiapi_accounts.operators.console import Console

PATH = "/admin/upstream"
ACTIVE = "upstream"
# The fields an add form that failed shows again: never the key.
_KEPT = ("organization", "weight", "models", "base_url")


_DONE = {
    "added": "Added the key: every edge uses it within a second.",
    "removed": "Removed the key from the pool: every edge stops using it within a second.",
    "saved": "Saved.",
    "enabled": "Enabled: the edges use it within a second.",
    "disabled": "Disabled: the edges stop using it within a second.",
}


async def pool_page(request: Request, console: Console) -> Response:
    return await _pool(request, console, notice=done_notice(request, _DONE))


async def _pool(
    request: Request,
    console: Console,
    status: int = 200,
    *,
    error: str | None = None,
    notice: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    entries = await pool_of(request).entries()
    return console.show(
        request, "console/upstream.html", ACTIVE, status,
        keys=entries, error=error, notice=notice, form=kept(form, _KEPT),
    )  # fmt: skip


async def add_key(request: Request, console: Console) -> Response:
    form: dict[str, str] = {}
    try:
        form = await change_form(request)
        body = build(
            UpstreamKeyCreateBody,
            key=form.get("key", "").strip() or None,
            base_url=form.get("base_url", "").strip() or None,
            organization=form.get("organization", "").strip() or None,
            weight=number(form.get("weight", ""), "weight"),
            models=words(form.get("models", "")) or None,
        )
        entry = await pool_of(request).add(body.change())
    except AccountsError as exc:
        return await _pool(request, console, exc.status, error=exc.message, form=form)
    return see_other(f"{PATH}?done=added#key-{entry.id}")


async def key_page(request: Request, console: Console) -> Response:
    return await _key(request, console, notice=done_notice(request, _DONE))


async def _key(
    request: Request,
    console: Console,
    status: int = 200,
    *,
    template: str = "console/upstream_key.html",
    **values: object,
) -> Response:
    try:
        entry = await pool_of(request).entry(request.path_params["key_id"])
    except AccountsError as exc:
        return console.show(
            request, "console/missing.html", ACTIVE, exc.status, message=exc.message
        )
    defaults: dict[str, object] = {"error": None, "notice": None, "tested": None}
    return console.show(request, template, ACTIVE, status, key=entry, **{**defaults, **values})


async def edit_key(request: Request, console: Console) -> Response:
    """Weight and models (empty: every model)."""
    try:
        form = await change_form(request)
        body = build(
            UpstreamKeyPatchBody,
            weight=number(form.get("weight", ""), "weight"),
            models=words(form.get("models", "")),
        )
        await pool_of(request).change(request.path_params["key_id"], body.change())
    except AccountsError as exc:
        return await _key(request, console, exc.status, error=exc.message)
    return see_other(f"{request.url.path}?done=saved")


async def switch_key(request: Request, console: Console) -> Response:
    """Disable or enable (the form's ``enabled`` is ``true`` or ``false``)."""
    try:
        form = await change_form(request)
        enabled = form.get("enabled") == "true"
        change = KeyChange(enabled=enabled)
        await pool_of(request).change(request.path_params["key_id"], change)
    except AccountsError as exc:
        return await _key(request, console, exc.status, error=exc.message)
    done = "enabled" if enabled else "disabled"
    return see_other(f"{PATH}/{request.path_params['key_id']}?done={done}")


async def test_key(request: Request, console: Console) -> Response:
    """One minimal request through the key, from an edge; its outcome shown on the key's page."""
    try:
        tested = await pool_of(request).test(request.path_params["key_id"])
    except AccountsError as exc:
        return await _key(request, console, exc.status, error=exc.message)
    return await _key(request, console, tested=tested)


async def remove_page(request: Request, console: Console) -> Response:
    return await _key(request, console, template="console/upstream_remove.html")


async def remove_key(request: Request, console: Console) -> Response:
    key_id = request.path_params["key_id"]
    try:
        await change_form(request)
        await pool_of(request).remove(key_id)
    except AccountsError as exc:
        return await _key(
            request, console, exc.status, template="console/upstream_remove.html",
            error=exc.message,
        )  # fmt: skip
    return see_other(f"{PATH}?done=removed")


PAGES = [
    ("GET", PATH, pool_page),
    ("POST", PATH, add_key),
    ("GET", PATH + "/{key_id}", key_page),
    ("POST", PATH + "/{key_id}", edit_key),
    ("POST", PATH + "/{key_id}/enabled", switch_key),
    ("POST", PATH + "/{key_id}/test", test_key),
    ("GET", PATH + "/{key_id}/remove", remove_page),
    ("POST", PATH + "/{key_id}/remove", remove_key),
]
NAV = (PATH, ACTIVE, "Upstream pool")
