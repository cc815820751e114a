"""Which ``anthropic-beta`` values may reach the upstream (pure).

By default every value passes unchanged: Claude Code adds new ones with each release, and a
gateway that refused what it does not know would break it on every upgrade. The operator may
deny values (``AIAPI_EDGE_BETA_DENY``) or pass only some (``AIAPI_EDGE_BETA_ALLOW``; when set,
nothing else passes, and a denied value is refused even if allowed). A request naming a refused
value gets a 400 ``invalid_request_error`` that names it, before admission and before anything is
sent upstream; values are never silently dropped, since the client asked for their behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_HEADER = b"anthropic-beta"
_SHOWN_CHARS = 100  # the most of one value an error message repeats


def parse_list(text: str) -> frozenset[str]:
    """A comma-separated setting as a set of values (blanks ignored)."""
    return frozenset(item.strip() for item in text.split(",") if item.strip())


def requested_betas(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every ``anthropic-beta`` value of a request, across repeated headers, in order."""
    values: list[str] = []
    for name, value in headers:
        if name.lower() == _HEADER:
            values.extend(v.strip() for v in value.decode("latin-1").split(",") if v.strip())
    return values


@dataclass(frozen=True, slots=True)
class BetaPolicy:
    deny: frozenset[str] = frozenset()
    allow: frozenset[str] | None = None  # None: every value not denied passes

    @classmethod
    def from_settings(cls, deny: str, allow: str) -> BetaPolicy:
        allowed = parse_list(allow)
        return cls(deny=parse_list(deny), allow=allowed or None)

    @property
    def open(self) -> bool:
        """Nothing is refused (the default): the request need not be looked at."""
        return not self.deny and self.allow is None

    def refused(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The first value this policy refuses, or None when all pass."""
        if self.open:
            return None
        for value in requested_betas(headers):
            if value in self.deny or (self.allow is not None and value not in self.allow):
                return value
        return None


def refusal_message(value: str) -> str:
    shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"
    return f"anthropic-beta: `{shown}` is not available through this gateway"
