"""Parse a request body only when its bytes may hold what a caller looks for (pure).

The Anthropic route forwards the client's bytes without parsing them; a rule that needs one field
(an image to estimate, a ``metadata.user_id`` to route by) first tests for a marker in the bytes,
so the common request pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson


def parsed_when(
    raw: bytes, markers: Iterable[bytes], parsed: Mapping[str, Any] | None = None
) -> Mapping[str, Any] | None:
    """The body as a JSON object when any marker occurs in ``raw``; else (or unparsable) None.
    ``parsed``: ``raw`` already parsed by the caller (returned rather than parsed again)."""
    if not any(marker in raw for marker in markers):
        return None
    if parsed is not None:
        return parsed
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
