"""Templates to HTML responses: one Jinja2 environment, autoescaped, strict about missing names.

Every page answer carries the same protective headers: a Content-Security-Policy that allows
only our own scripts and styles (so injected markup cannot run code), no framing, no caching of
pages that may show a key or a balance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from aiapi_shared.money import format_usd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def usd(nano: int) -> str:
    """An exact decimal USD string (nothing rounded away)."""
    return format_usd(nano)


def when(moment: datetime | None) -> str:
    """A time in UTC to the minute, e.g. ``2026-12-07 08:53 UTC``; an empty value as ``never``."""
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class Renderer:
    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("aiapi_accounts", "pages/templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship inside the package: no need to stat each one on every render.
            auto_reload=False,
        )
        self._env.filters["usd"] = usd
        self._env.filters["when"] = when
        # Static files change with the release: the version in their URL defeats stale caches.
        self._env.globals["asset_version"] = version("aiapi-accounts")

    def page(self, template: str, values: dict[str, Any], status: int = 200) -> HTMLResponse:
        html = self._env.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
