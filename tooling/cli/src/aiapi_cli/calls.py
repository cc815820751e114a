"""One operator API call, as a parsed ``aiapi admin`` command line stands for it."""

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
