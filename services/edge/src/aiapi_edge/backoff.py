"""How long one request may wait for an overloaded or resting upstream (pure, random injected).

A 529 says the API is busy for everyone, so another key helps little and the key is not to
blame; what helps is waiting a moment. Each request has a waiting budget
(``AIAPI_EDGE_OVERLOAD_RETRY_S``): the waits between its attempts add up to at most that, and
only before anything has reached the client. A wait is the upstream's ``retry-after`` when it
gave one, else an exponential backoff with jitter (``BASE_S`` doubling up to ``CAP_S``, each
drawn between half and all of that step) so that many requests refused together do not all come
back together. When the next wait would overrun the budget, the request gives up and the client
is told to come back after that wait (its ``retry-after``).
"""

from __future__ import annotations

import random

BASE_S = 0.25
CAP_S = 2.0


class WaitBudget:
    """The waiting one request has left (a new one per request)."""

    __slots__ = ("_budget_s", "_random", "_step", "waited_s")

    def __init__(self, budget_s: float, rng: random.Random | None = None) -> None:
        self._budget_s = budget_s
        self._random = rng or random.Random()
        self._step = 0
        self.waited_s = 0.0

    def backoff(self) -> float:
        """The next jittered backoff step (it grows with each call)."""
        ceiling = min(CAP_S, BASE_S * (1 << self._step))
        self._step = min(self._step + 1, 16)
        return ceiling * self._random.uniform(0.5, 1.0)

    def take(self, wait_s: float) -> bool:
        """Spend ``wait_s`` of the budget if it is left (True), else leave it (False)."""
        if self.waited_s + wait_s > self._budget_s:
            return False
        self.waited_s += wait_s
        return True
