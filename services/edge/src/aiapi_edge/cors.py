"""CORS for browser clients (NextChat, TypingMind, LobeChat, Open WebUI in browser mode): which
headers a preflight and an answer carry. Pure: the app calls it with the request's headers.

- Origins come from ``AIAPI_CORS_ORIGINS``: ``*`` (the default: the customer's key is the
  credential, not a cookie, so any page may use it), a comma-separated list of origins, or empty
  (no CORS headers at all: browsers are refused).
- With ``*`` every answer says ``access-control-allow-origin: *`` and never
  ``access-control-allow-credentials`` (browsers refuse credentials with a wildcard anyway).
  With a list, an origin on it is echoed with ``access-control-allow-credentials: true``, an
  origin not on it gets no CORS header; both get ``vary: origin`` so caches keep them apart.
- A preflight (``OPTIONS`` with ``access-control-request-method``) is answered 204 with the
  allowed methods (``GET, POST, OPTIONS``), the requested headers that are allowed
  (:data:`ALLOWED_HEADERS`, plus any ``x-stainless-*`` the SDKs add), and a max age. A request
  header outside the list is left out of the answer, so the browser refuses that request.
- Answers expose ``request-id``, ``x-request-id``, ``retry-after``, ``aiapi-cost-usd`` and
  ``aiapi-balance-usd`` to the page's script (:data:`EXPOSED_HEADERS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

Headers = list[tuple[bytes, bytes]]

# What the Anthropic and OpenAI SDKs and the browser clients send (lower case).
ALLOWED_HEADERS: Final = frozenset(
    {
        "accept",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
        "anthropic-version",
        "authorization",
        "content-type",
        "openai-beta",
        "openai-organization",
        "openai-project",
        "x-api-key",
        "x-request-id",
    }
)
ALLOWED_PREFIXES: Final = ("x-stainless-",)
EXPOSED_HEADERS: Final = b"request-id, x-request-id, retry-after, aiapi-cost-usd, aiapi-balance-usd"
METHODS: Final = b"GET, POST, OPTIONS"
MAX_AGE_S: Final = 86400


def allowed_header(name: str) -> bool:
    return name in ALLOWED_HEADERS or name.startswith(ALLOWED_PREFIXES)


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """``origins`` None: any origin; empty: CORS off; else the allowed origins."""

    origins: frozenset[str] | None

    @classmethod
    def from_setting(cls, value: str) -> CorsPolicy:
        entries = [v.strip().rstrip("/") for v in value.split(",") if v.strip()]
        if "*" in entries:
            return cls(None)
        return cls(frozenset(entries))

    def _origin_headers(self, origin: bytes | None) -> Headers:
        if self.origins is None:
            return [(b"access-control-allow-origin", b"*")]
        headers: Headers = [(b"vary", b"origin")] if self.origins else []
        if origin is not None and origin.decode("latin-1") in self.origins:
            headers.append((b"access-control-allow-origin", origin))
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    def answer_headers(self, origin: bytes | None) -> Headers:
        """The CORS headers of an answer to a request from ``origin``."""
        headers = self._origin_headers(origin)
        if any(name == b"access-control-allow-origin" for name, _ in headers):
            headers.append((b"access-control-expose-headers", EXPOSED_HEADERS))
        return headers

    def preflight_headers(self, origin: bytes | None, requested: bytes | None) -> Headers:
        """The headers of the 204 answering a preflight from ``origin`` asking for the
        ``requested`` headers (the ``access-control-request-headers`` value)."""
        headers = self._origin_headers(origin)
        if not any(name == b"access-control-allow-origin" for name, _ in headers):
            return headers
        names = _header_names(requested.decode("latin-1") if requested else "")
        allowed = ", ".join(n for n in names if allowed_header(n))
        headers.append((b"access-control-allow-methods", METHODS))
        if allowed:
            headers.append((b"access-control-allow-headers", allowed.encode()))
        headers.append((b"access-control-max-age", str(MAX_AGE_S).encode()))
        return headers


def _header_names(value: str) -> Iterable[str]:
    return [name.strip().lower() for name in value.split(",") if name.strip()]
