"""Structured logs for every service: one JSON object per line on stderr.

The rule is that no caller passes a secret (API keys, passwords, tokens, database or node URLs
with credentials) to a logger at all; tests grep the logs of full runs. What a caller does not
control (a library's own log line, an exception's message in a traceback) is covered by
``redact``: values a service knows to be secret (payments: its node URLs, which often carry a
provider's API key) are replaced wherever they appear in a line. Extra fields given with
``extra={...}`` become keys of the object.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn adds an ANSI-coloured copy of msg
}


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a value containing another is replaced whole.
        self._redact = sorted({v for v in redact if len(v) >= 8}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        for secret in self._redact:  # JSON-escaped as it appears in the line
            line = line.replace(orjson.dumps(secret).decode()[1:-1], "<redacted>")
        return line


def configure_logging(level: str, *, redact: Iterable[str] = ()) -> None:
    """Route every logger (uvicorn's included) to one JSON handler on stderr; ``redact``: values
    never to appear in a line (values shorter than 8 characters are not secrets worth the name
    and would garble lines)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request URL at INFO; a node or price-source URL may carry an API key.
    logging.getLogger("httpx").setLevel(logging.WARNING)
