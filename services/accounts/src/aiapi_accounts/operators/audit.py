"""What the audit log keeps of a request (pure): the body with every secret replaced, the reason
given for it, the account it acted on, and the opaque page cursor of ``GET /admin/v1/audit``.

The summary is for people reading the log: values are kept (an amount, a plan, a name) except
those whose field name says secret (a key, a password, a token) or whose value looks like key
material whatever its field is called. Long strings and lists are shortened, deep nesting cut.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

REDACTED = "[redacted]"
REASON_HEADER = "aiapi-reason"
MAX_REASON = 1000
_MAX_TEXT = 200
_MAX_ITEMS = 20
_MAX_DEPTH = 4
# A field is secret when its name is one of these, or contains one of the fragments.
_SECRET_NAMES = frozenset({"key", "authorization", "seed", "xprv", "xpub_private"})
_SECRET_FRAGMENTS = ("password", "secret", "token", "private", "mnemonic", "api_key", "passphrase")
# Values that are key material whatever their field is called.
_SECRET_PREFIXES = ("sk-", "aiapi_op_", "xprv", "tprv", "-----BEGIN")
_FORM = "application/x-www-form-urlencoded"


def text(value: str) -> str:
    """Text PostgreSQL can hold: a NUL character (which a text or jsonb value refuses) becomes
    U+FFFD, so a hostile body is recorded instead of failing its own audit entry."""
    return value.replace("\x00", "\ufffd")


def secret_field(name: str) -> bool:
    lowered = name.lower()
    if lowered in _SECRET_NAMES or lowered.endswith(("_key", "-key")):
        return lowered != "idempotency_key"
    return any(fragment in lowered for fragment in _SECRET_FRAGMENTS)


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        if value.startswith(_SECRET_PREFIXES):
            return REDACTED
        return text(value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "...")
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= _MAX_DEPTH:
        return "[...]"
    if isinstance(value, Mapping):
        return {
            text(str(k)[:_MAX_TEXT]): REDACTED if secret_field(str(k)) else _clean(v, depth + 1)
            for k, v in list(value.items())[:_MAX_ITEMS]
        }
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value[:_MAX_ITEMS]]
    return str(type(value).__name__)


def parsed_body(body: bytes, content_type: str) -> Any:
    """The body as data: a JSON document, a form's fields, or None (empty or unreadable)."""
    if not body:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        decoded = body.decode("utf-8")
        if kind == _FORM:
            return dict(parse_qsl(decoded, keep_blank_values=True))
        return json.loads(decoded)
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: unreadable too
        return None


def summary(body: bytes, content_type: str) -> dict[str, Any]:
    """The body as the audit log keeps it; a body that is not an object is described instead."""
    data = parsed_body(body, content_type)
    if isinstance(data, dict):
        cleaned: dict[str, Any] = _clean(data, 0)
        return cleaned
    if data is None:
        return {} if not body else {"_body": f"{len(body)} bytes, not JSON or a form"}
    return {"_body": _clean(data, 1)}


def reason(body: bytes, content_type: str, header: str | None) -> str | None:
    """Why: the body's ``reason`` field, else the ``Aiapi-Reason`` header (percent-encoded
    UTF-8, so that any language fits in a header)."""
    data = parsed_body(body, content_type)
    given = data.get("reason") if isinstance(data, dict) else None
    if not isinstance(given, str) or not given.strip():
        given = unquote(header) if header else None
    if given is None or not given.strip():
        return None
    return text(given.strip()[:MAX_REASON])


def account_of(route: str, params: Mapping[str, str], created_id: str | None) -> str | None:
    """The account a request acted on: named in its path, or just created by it."""
    if "account_id" in params:
        return params["account_id"]
    if route.startswith("/admin/v1/accounts/{id}"):
        return params.get("id")
    if route == "/admin/v1/accounts":
        return created_id
    return None


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The entry id a cursor stands for; None when it is not one this API gave."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = raw.partition(":")
    return int(number) if prefix == "audit" and number.isdigit() else None
