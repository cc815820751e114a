"""HTML form bodies (``application/x-www-form-urlencoded``): read bounded, parsed strictly.

A page form carries a few short fields; anything larger is refused before it is held in memory.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from aiapi_accounts.errors import InvalidRequest

MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 20
FORM_TYPE = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (a repeated name keeps its last value)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != FORM_TYPE:
        raise InvalidRequest(f"a form must be sent as {FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequest("the form is too large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form could not be read") from None
    return dict(pairs)
