"""The `/_sim/...` control routes: arm faults, read recorded requests and counters, reset.

They are test and operator controls, not part of the simulated Anthropic API, and need no key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Scope

from aiapi_simulator.errors import invalid_request
from aiapi_simulator.faults import FaultError, build_fault

if TYPE_CHECKING:
    from aiapi_simulator.app import Handler, Request, Simulator


def query_params(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def routes(sim: Simulator) -> dict[tuple[str, str], Handler]:
    state = sim.state

    async def ok(request: Request, payload: Any, status: int = 200) -> None:
        await sim.wire.send_body(request.send, status, request.id, orjson.dumps(payload))

    async def arm_fault(request: Request) -> None:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise invalid_request("body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("fault"), str):
            raise invalid_request('body must be an object with a "fault" string')
        count, api_key = body.get("count", 1), body.get("api_key")
        route = body.get("route", "messages")
        if not isinstance(count, int) or isinstance(count, bool):
            raise invalid_request("count must be an integer")
        if api_key is not None and not isinstance(api_key, str):
            raise invalid_request("api_key must be a string")
        if not isinstance(route, str):
            raise invalid_request("route must be a string")
        controls = {"fault", "count", "api_key", "route"}
        options = {k: v for k, v in body.items() if k not in controls}
        try:
            state.faults.arm(build_fault(body["fault"], options), count, api_key, route)
        except FaultError as exc:
            raise invalid_request(str(exc)) from None
        await ok(request, {"pending": state.faults.pending()}, 201)

    async def list_faults(request: Request) -> None:
        await ok(request, {"pending": state.faults.pending()})

    async def clear_faults(request: Request) -> None:
        state.faults.clear()
        await ok(request, {"pending": []})

    async def list_requests(request: Request) -> None:
        await ok(request, {"data": [recorded.to_json() for recorded in state.recorded]})

    async def clear_requests(request: Request) -> None:
        state.recorded.clear()
        await ok(request, {"data": []})

    async def stats(request: Request) -> None:
        await ok(request, state.stats_json())

    async def clear_stats(request: Request) -> None:
        state.stats.clear()
        await ok(request, state.stats_json())

    async def clear_cache(request: Request) -> None:
        state.cache.clear()
        await ok(request, {"cache_entries": 0})

    async def batch_timing(request: Request) -> None:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise invalid_request("body is not valid JSON") from None
        seconds = body.get("processing_s") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise invalid_request('body must be {"processing_s": seconds >= 0}')
        sim.batches.processing_s = float(seconds)
        await ok(request, {"processing_s": sim.batches.processing_s})

    async def reset(request: Request) -> None:
        state.faults.clear()
        state.recorded.clear()
        state.stats.clear()
        state.cache.clear()
        sim.batches.clear()
        sim.batches.processing_s = sim.config.batch_processing_s
        await ok(request, state.stats_json())

    return {
        ("POST", "/_sim/faults"): arm_fault,
        ("GET", "/_sim/faults"): list_faults,
        ("DELETE", "/_sim/faults"): clear_faults,
        ("GET", "/_sim/requests"): list_requests,
        ("DELETE", "/_sim/requests"): clear_requests,
        ("GET", "/_sim/stats"): stats,
        ("DELETE", "/_sim/stats"): clear_stats,
        ("DELETE", "/_sim/cache"): clear_cache,
        ("POST", "/_sim/reset"): reset,
        ("POST", "/_sim/batches"): batch_timing,
    }
