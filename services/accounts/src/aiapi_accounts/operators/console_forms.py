"""What the console's write pages share: reading a posted form and its reason, and the shape
of a page with forms (:class:`FormPage`).

The gate has checked the form's CSRF token and the operator's role before a handler runs, and
records the form (secrets replaced) with its ``reason`` field in the audit log; a console form
that changes something must give that reason, so every change on record says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import AccountsError, InvalidRequest
from aiapi_accounts.operators.audit import MAX_REASON
from aiapi_accounts.pages.forms import read_form
from aiapi_accounts.pages.view import see_other

if TYPE_CHECKING:  # the console's table imports the pages, which import this module
    from aiapi_accounts.operators.console import Console

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


def done_notice(request: Request, notices: Mapping[str, str]) -> str | None:
    """The notice of a page a change redirected to (``?done=``, so that a reload does not post
    the change again): one of the page's own texts, never the query's."""
    return notices.get(request.query_params.get("done", ""))


def kept(form: dict[str, str] | None, names: tuple[str, ...]) -> dict[str, str]:
    """The fields a refused form shows again (never a secret one: it is not in ``names``)."""
    return {name: (form or {}).get(name, "") for name in names}


Loader = Callable[[Request], Awaitable[dict[str, Any]]]
# A change made from a posted form: the address to redirect to, or an answer of its own (a new
# token, shown in the answer to its form and nowhere else).
Change = Callable[[dict[str, str]], Awaitable[str | Response]]


@dataclass(frozen=True)
class FormPage:
    """A console page and the forms posted to it: a refused change shows the page again with the
    error and the fields kept; a change made redirects (``?done=``, so that a reload does not post
    it again) and the page says what was done."""

    template: str
    active: str  # the navigation entry
    # What the page shows, read for each answer; an AccountsError: the "missing" page instead.
    load: Loader
    done: Mapping[str, str] = field(default_factory=dict)  # ``?done=`` → the notice
    kept: tuple[str, ...] | None = None  # the fields a refused form shows again (as ``form``)
    defaults: Mapping[str, object] = field(default_factory=dict)  # what its template may show

    async def show(
        self,
        request: Request,
        console: Console,
        status: int = 200,
        *,
        template: str | None = None,
        form: dict[str, str] | None = None,
        **values: object,
    ) -> Response:
        try:
            shown = await self.load(request)
        except AccountsError as exc:
            return console.show(
                request, "console/missing.html", self.active, exc.status, message=exc.message
            )
        if self.kept is not None:
            values["form"] = kept(form, self.kept)
        return console.show(
            request, template or self.template, self.active, status,
            **{**self.defaults, **shown, **values},
        )  # fmt: skip

    async def page(
        self, request: Request, console: Console, *, form: dict[str, str] | None = None
    ) -> Response:
        """The page as a GET shows it: with the notice of the change that redirected here."""
        notice = done_notice(request, self.done)
        return await self.show(request, console, form=form, notice=notice)

    async def change(
        self, request: Request, console: Console, change: Change, *, template: str | None = None
    ) -> Response:
        """Read the posted form (with its reason) and make the change; refused: the page again
        (or ``template``), with the error and the fields it keeps."""
        form: dict[str, str] = {}
        try:
            form = await change_form(request)
            made = await change(form)
        except AccountsError as exc:
            return await self.show(
                request, console, exc.status, template=template, form=form, error=exc.message
            )
        return see_other(made) if isinstance(made, str) else made
