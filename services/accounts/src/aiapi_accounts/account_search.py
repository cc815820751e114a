"""The operator's account search: its query string, its page cursor, what a search text may be
(pure; the lookups are in ``routes_search``).

A page cursor names the sort it was cut for and the last row's sort value and id; the next
page starts after that row (keyset), so an account created or charged meanwhile neither repeats
nor hides another.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from aiapi_shared.apikeys import PREFIX

from aiapi_accounts.errors import InvalidRequest

Sort = Literal["created", "balance", "spend"]
SORTS: tuple[Sort, ...] = ("created", "balance", "spend")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_TEXT = 200
# What billing may be asked about in one search (a text matching more accounts is refused).
MAX_MATCHES = 5000

# A request-id as the edge makes them; a text of another shape is not asked of billing.
_REQUEST_ID = re.compile(r"^req_[0-9a-zA-Z]{8,64}$")
# A deposit address or a transaction hash: long, no spaces, no "@".
_CHAIN_TEXT = re.compile(r"^[0-9A-Za-z]{20,100}$")


@dataclass(frozen=True)
class Position:
    """The last row of a page: its sort value (a time, or nano-USD) and its account id."""

    value: datetime | int
    account_id: str


@dataclass(frozen=True)
class SearchParams:
    text: str | None
    sort: Sort
    descending: bool
    limit: int
    after: Position | None


def search_params(params: Mapping[str, str]) -> SearchParams:
    text = params.get("q", "").strip() or None
    if text is not None and len(text) > MAX_TEXT:
        raise InvalidRequest(f"q is longer than {MAX_TEXT} characters")
    sort = params.get("sort", "created")
    if sort not in SORTS:
        raise InvalidRequest("sort is one of created, balance, spend")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order is asc or desc")
    raw = params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    cursor = params.get("cursor")
    after = decode_cursor(cursor, sort, order) if cursor else None
    return SearchParams(text, sort, order == "desc", int(raw), after)


def encode_cursor(sort: Sort, order: str, position: Position) -> str:
    value = position.value
    shown = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps({"s": sort, "o": order, "v": shown, "i": position.account_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, order: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw)
        if found["s"] != sort or found["o"] != order:
            raise InvalidRequest("the cursor was given for another sort or order")
        value = found["v"]
        parsed = datetime.fromisoformat(value) if sort == "created" else int(value)
        if isinstance(parsed, int) and isinstance(value, bool):
            raise ValueError(value)
        return Position(parsed, str(found["i"]))
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRequest("cursor is not one this API gave") from None


def may_be_request_id(text: str) -> bool:
    return bool(_REQUEST_ID.match(text))


def may_be_on_chain(text: str) -> bool:
    """A deposit address or a transaction hash could look like this."""
    return bool(_CHAIN_TEXT.match(text.strip().removeprefix("0x")))


def may_be_key(text: str) -> bool:
    """A whole API key pasted: it is looked up by its hash, never stored or logged."""
    return text.startswith(PREFIX) and "..." not in text
