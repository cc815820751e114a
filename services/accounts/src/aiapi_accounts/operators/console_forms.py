"""What the console's write pages share: reading a posted form and its reason.

The gate has checked the form's CSRF token and the operator's role before a handler runs, and
records the form (secrets replaced) with its ``reason`` field in the audit log; a console form
that changes something must give that reason, so every change on record says why.
"""

from __future__ import annotations

from starlette.requests import Request

from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.operators.audit import MAX_REASON
from aiapi_accounts.pages.forms import read_form

REASON_FIELD = "reason"


async def change_form(request: Request) -> dict[str, str]:
    """The posted form of a change; 400 without a reason."""
    form = await read_form(request)
    if not form.get(REASON_FIELD, "").strip():
        raise InvalidRequest("say why (the reason is kept in the audit log)")
    if len(form[REASON_FIELD]) > MAX_REASON:
        raise InvalidRequest(f"the reason is longer than {MAX_REASON} characters")
    return form


def words(value: str) -> list[str]:
    """A list typed into one field, separated by commas or spaces (models, for one)."""
    return [word for word in value.replace(",", " ").split() if word]


def number(value: str, field: str) -> int | None:
    """A whole number typed into a field; None when left empty."""
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"{field}: a whole number") from None


def done_notice(request: Request, notices: dict[str, str]) -> str | None:
    """The notice of a page a change redirected to (``?done=``, so that a reload does not post
    the change again): one of the page's own texts, never the query's."""
    return notices.get(request.query_params.get("done", ""))


def kept(form: dict[str, str] | None, names: tuple[str, ...]) -> dict[str, str]:
    """The fields a refused form shows again (never a secret one: it is not in ``names``)."""
    return {name: (form or {}).get(name, "") for name in names}
