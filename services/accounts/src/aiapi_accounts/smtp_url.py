"""``AIAPI_SMTP_URL`` read into its parts (no I/O). Error messages never repeat the URL: it
holds the password."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

_DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    # smtps: TLS from the first byte; smtp: STARTTLS when the server offers it.
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpTarget:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("AIAPI_SMTP_URL is not a valid URL") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError("AIAPI_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("AIAPI_SMTP_URL names no host")
    return SmtpTarget(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[parts.scheme],
        implicit_tls=parts.scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
