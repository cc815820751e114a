"""The cyclic garbage collector of a service process, set for a server: a large heap that lives
as long as the process, and many short requests in flight.

CPython's defaults suit scripts. A young collection runs every 700 net allocations of container
objects; under load the requests in flight hold thousands, so it ran every few dozen requests,
traversed them, and moved those still alive into the older generations, which made a full
collection due every few seconds: a walk of every object in the process (50,000 to 100,000 in
each service after start-up: modules, settings, the catalogue, schemas), 40 to 60 ms each, the
worker's every request paused meanwhile. About a tenth of an edge worker's and of billing's CPU
under load went there (docs/performance.md, "The garbage collector").

Two settings, made by :func:`aiapi_shared.runner.launch` (a service's own process; tests that
run a service in their process keep theirs):

* :func:`for_service`, at process start: a young collection every :data:`YOUNG_OBJECTS` net
  allocations. The edge's requests leave no reference cycle behind
  (``tests/edge/test_no_cyclic_garbage.py``; billing's settlement left none in a measured
  window either), so the count grows mostly with what is alive, and
  a collection comes when the requests in flight grew by that much, not every few dozen
  requests. Garbage in a cycle (rare) is found a little later; a young collection walks at
  most about that many objects (a few milliseconds).
* :func:`freeze_startup`, once the service has started, before it serves: what start-up made is
  moved out of every later collection's reach (``gc.freeze``). Those objects live as long as
  the process; a full collection then walks only what was made since.
"""

from __future__ import annotations

import gc

YOUNG_OBJECTS = 10_000


def for_service() -> None:
    """The young generation's threshold for a server; the older ones' are left as they are."""
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, older, oldest)


def freeze_startup() -> None:
    """Collect what start-up left behind, then keep every object alive now out of all later
    collections."""
    gc.collect()
    gc.freeze()
