"""How long a batch loop waits after a short batch before taking the next (pure: no I/O).

A batch loop (billing's settlement consumer, the edge's spool relay) pays a fixed cost per batch:
a commit and its fsync, a round of acknowledgements, an outbox pass, a snapshot write. Under load
batches fill and that cost is shared by many events; when requests come one at a time each would
pay it alone, so CPU per request would rise as traffic falls. Waiting after a short batch lets the
next events gather, but a fixed wait is either too short for light traffic or needlessly slow for
busy traffic. :class:`AdaptiveLinger` steers the wait towards batches of about ``target`` events:

* a **full** batch (``batch`` events): no wait at all, the next batch is already waiting;
* a batch of **at least** ``target`` events: the wait halves (down to ``floor_s``);
* a **shorter** batch: the wait doubles (up to ``ceiling_s``), so lighter traffic is gathered
  over longer, never longer than ``ceiling_s`` (the bound on the delay it adds);
* a batch that came after the loop **waited longer than** ``ceiling_s`` for it (events further
  apart than any wait could gather): back to ``floor_s``, so the first event after a pause is
  not held for a wait that gathers nothing.

With ``ceiling_s == floor_s`` it is the fixed linger of old.
"""

from __future__ import annotations


class AdaptiveLinger:
    def __init__(self, floor_s: float, ceiling_s: float, *, target: int, batch: int) -> None:
        self._floor_s = max(0.0, floor_s)
        self._ceiling_s = max(self._floor_s, ceiling_s)
        self._target = max(1, min(target, batch))
        self._batch = max(1, batch)
        self._wait_s = self._floor_s

    @property
    def current_s(self) -> float:
        """The wait the loop would use after its next short batch (for tests and metrics)."""
        return self._wait_s

    def after(self, got: int, waited_s: float = 0.0) -> float:
        """The wait before the next batch, after one of ``got`` events that the loop waited
        ``waited_s`` for (0 when the events were already there)."""
        if got <= 0:
            return 0.0  # nothing came: the fetch itself waited; nothing to gather
        if got >= self._batch:
            self._wait_s = self._floor_s
            return 0.0
        if waited_s > self._ceiling_s:
            self._wait_s = self._floor_s
        elif got >= self._target:
            self._wait_s = max(self._floor_s, self._wait_s / 2)
        else:
            self._wait_s = min(self._ceiling_s, max(self._wait_s * 2, self._floor_s, 0.001))
        return self._wait_s
