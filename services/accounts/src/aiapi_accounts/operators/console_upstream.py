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
from aiapi_accounts.operators.console_forms import FormPage, number, words
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


async def _pool(request: Request) -> dict[str, object]:
    return {"keys": await pool_of(request).entries()}


async def _key(request: Request) -> dict[str, object]:
    return {"key": await pool_of(request).entry(request.path_params["key_id"])}


POOL = FormPage("console/upstream.html", ACTIVE, _pool, _DONE, _KEPT)
KEY = FormPage("console/upstream_key.html", ACTIVE, _key, _DONE, defaults={"tested": None})
REMOVE = "console/upstream_remove.html"


async def pool_page(request: Request, console: Console) -> Response:
    return await POOL.page(request, console)


async def add_key(request: Request, console: Console) -> Response:
    async def add(form: dict[str, str]) -> str:
        body = build(
            UpstreamKeyCreateBody,
            key=form.get("key", "").strip() or None,
            base_url=form.get("base_url", "").strip() or None,
            organization=form.get("organization", "").strip() or None,
            weight=number(form.get("weight", ""), "weight"),
            models=words(form.get("models", "")) or None,
        )
        entry = await pool_of(request).add(body.change())
        return f"{PATH}?done=added#key-{entry.id}"

    return await POOL.change(request, console, add)


async def key_page(request: Request, console: Console) -> Response:
    return await KEY.page(request, console)


async def edit_key(request: Request, console: Console) -> Response:
    """Weight and models (empty: every model)."""

    async def edit(form: dict[str, str]) -> str:
        body = build(
            UpstreamKeyPatchBody,
            weight=number(form.get("weight", ""), "weight"),
            models=words(form.get("models", "")),
        )
        await pool_of(request).change(request.path_params["key_id"], body.change())
        return f"{request.url.path}?done=saved"

    return await KEY.change(request, console, edit)


async def switch_key(request: Request, console: Console) -> Response:
    """Disable or enable (the form's ``enabled`` is ``true`` or ``false``)."""

    async def switch(form: dict[str, str]) -> str:
        enabled = form.get("enabled") == "true"
        await pool_of(request).change(request.path_params["key_id"], KeyChange(enabled=enabled))
        done = "enabled" if enabled else "disabled"
        return f"{PATH}/{request.path_params['key_id']}?done={done}"

    return await KEY.change(request, console, switch)


async def test_key(request: Request, console: Console) -> Response:
    """One minimal request through the key, from an edge; its outcome shown on the key's page."""
    try:
        tested = await pool_of(request).test(request.path_params["key_id"])
    except AccountsError as exc:
        return await KEY.show(request, console, exc.status, error=exc.message)
    return await KEY.show(request, console, tested=tested)


async def remove_page(request: Request, console: Console) -> Response:
    return await KEY.show(request, console, template=REMOVE)


async def remove_key(request: Request, console: Console) -> Response:
    async def remove(form: dict[str, str]) -> str:
        await pool_of(request).remove(request.path_params["key_id"])
        return f"{PATH}?done=removed"

    return await KEY.change(request, console, remove, template=REMOVE)


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
