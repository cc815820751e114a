"""One call of the operator API, as a command line stands for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    timeout_s: float = 30.0
    params: dict[str, str] | None = None  # the query string
