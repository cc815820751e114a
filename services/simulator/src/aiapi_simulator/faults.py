"""Injected failures: what a fault is, and the queue of faults armed through `/_sim/faults`.

Pure state, no I/O; the HTTP shell decides how each kind is acted out on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Kinds answered with an error status before anything is streamed.
STATUS_KINDS = frozenset(
    {"429", "529", "500", "401", "402", "403", "spend_limit", "credit_balance_too_low"}
)
# Kinds acted out in the middle of a response.
STREAM_KINDS = frozenset({"stream_error", "stall", "disconnect"})
KINDS = STATUS_KINDS | STREAM_KINDS
# The routes an armed fault may be for (the messages route unless said otherwise).
ROUTES = frozenset({"messages", "count_tokens"})


class FaultError(ValueError):
    """A fault description that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One failure to act out.

    after: deltas sent before a stream fault strikes (default 0).
    seconds: how long a stall lasts (default 30).
    retry_after: the `retry-after` header of a 429 (default 1) or a 529 (default none: the
        real API often sends a 529 without one).
    pings: whether a stall sends `ping` events every `ping_interval` (default true).
    """

    kind: str
    after: int = 0
    seconds: float = 30.0
    retry_after: int | None = None
    pings: bool = True


def _as_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FaultError(f"{name} must be an integer, got {value!r}") from None
    if number < 0:
        raise FaultError(f"{name} must not be negative")
    return number


def _as_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FaultError(f"{name} must be a number, got {value!r}") from None
    if number < 0:
        raise FaultError(f"{name} must not be negative")
    return number


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in {"1", "true", "on", "yes"}:
        return True
    if text in {"0", "false", "off", "no"}:
        return False
    raise FaultError(f"{name} must be a boolean, got {value!r}")


def build_fault(kind: str, options: Mapping[str, Any]) -> Fault:
    """Make a Fault from a kind and its options (from a directive or a `/_sim/faults` body)."""
    if kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r}; expected one of {sorted(KINDS)}")
    unknown = set(options) - {"after", "seconds", "retry_after", "pings"}
    if unknown:
        raise FaultError(f"unknown fault option(s) {sorted(unknown)}")
    retry_after = options.get("retry_after")
    return Fault(
        kind=kind,
        after=_as_int("after", options.get("after", 0)),
        seconds=_as_float("seconds", options.get("seconds", 30.0)),
        retry_after=None if retry_after is None else _as_int("retry_after", retry_after),
        pings=_as_bool("pings", options.get("pings", True)),
    )


@dataclass(slots=True)
class _Armed:
    fault: Fault
    remaining: int
    api_key: str | None
    route: str


class FaultQueue:
    """Faults armed for the next matching `/v1/messages` requests, first armed first used."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def arm(self, fault: Fault, count: int, api_key: str | None, route: str = "messages") -> None:
        if count < 1:
            raise FaultError("count must be at least 1")
        if route not in ROUTES:
            raise FaultError(f"route must be one of {sorted(ROUTES)}, got {route!r}")
        if route != "messages" and fault.kind not in STATUS_KINDS:
            raise FaultError(f"{route} answers no stream: only status faults apply to it")
        self._armed.append(_Armed(fault, count, api_key, route))

    def take(self, api_key: str, route: str = "messages") -> Fault | None:
        """The fault for a request made with this upstream key on this route, consuming one
        use of it."""
        if not self._armed:
            return None
        for index, armed in enumerate(self._armed):
            if armed.route == route and (armed.api_key is None or armed.api_key == api_key):
                armed.remaining -= 1
                if armed.remaining == 0:
                    del self._armed[index]
                return armed.fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        return [
            {
                "fault": a.fault.kind,
                "remaining": a.remaining,
                "api_key": a.api_key,
                "route": a.route,
                "after": a.fault.after,
                "seconds": a.fault.seconds,
                "retry_after": a.fault.retry_after,
                "pings": a.fault.pings,
            }
            for a in self._armed
        ]

    def clear(self) -> None:
        self._armed.clear()
