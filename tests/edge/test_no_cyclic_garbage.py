"""A served request leaves nothing to the cyclic garbage collector: its scope, its request
cycle and what they hold are freed by reference counting as it ends, on every route, streamed
or not.

A request left in a reference cycle waits for the collector, and with one on every request the
collector ran every few dozen requests, moved the requests in flight into older generations and
so brought on full collections (tens of milliseconds each, every request of the worker paused):
about a tenth of an edge worker's CPU under load (docs/performance.md, "Reference cycles").
"""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from .conftest import EdgeEnv
from .test_usage_once import ROUTES, send


def _request_garbage(garbage: list[Any]) -> Counter[str]:
    """What of the edge's requests was only freed by the collector: request cycles, and ASGI
    scopes (dicts with the edge's scope keys)."""
    found: Counter[str] = Counter()
    for obj in garbage:
        if isinstance(obj, RequestResponseCycle):
            found["request cycle"] += 1
        elif isinstance(obj, dict) and obj.get("type") == "http" and "path" in obj:
            found[f"scope of {obj['path']}"] += 1
    return found


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_served_requests_leave_nothing_in_a_reference_cycle(
    env: EdgeEnv, stream: bool
) -> None:
    for route in ROUTES:  # the first request of each route builds its caches: not counted
        assert (await send(env, route, "warm", stream=stream))[0] == 200
    gc.collect()
    gc.disable()  # what a request leaves in a cycle stays there until the collect below
    try:
        for route in ROUTES:
            for n in range(5):
                status, _ = await send(env, route, f"hello {n}", stream=stream)
                assert status == 200
        gc.set_debug(gc.DEBUG_SAVEALL)  # the collected objects are kept in gc.garbage
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert _request_garbage(garbage) == Counter()
