"""Every admitted request spools exactly one usage event, on every path and every route: an
answer, an upstream refusal, no upstream able to answer, a stream error, a client gone
mid-stream, a hold extension refused, and a fault of the gateway itself. A request refused
before admission spools none. The spool's appends are counted in the edge's own process."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from aiapi_edge import anthropic_route, openai_route, responses_route
from aiapi_edge.spool import Spool

from .conftest import EdgeEnv
from .support import sim_requests, usage_events, wait_for
from .test_hold_extension import LONG_STREAM, serve_extensions, small_hold
from .test_pool import arm

ROUTES = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "responses": "/v1/responses",
}
HEADERS = {"anthropic-version": "2023-06-01"}
# What the first piece of generated text looks like on each route.
DELTAS = (b"content_block_delta", b'"content"', b"response.output_text.delta")


def count_appends(spool: Spool, told: dict[str, bool] | None = None) -> Counter[str]:
    """Count the spool's appends by event id (the request id) from now on; ``told``, when
    given, gets whether each append was told it is alone (:meth:`Spool.append`)."""
    appends: Counter[str] = Counter()
    append = spool.append

    async def counted(event_id: str, subject: str, payload: bytes, *, alone: bool = False) -> None:
        appends[event_id] += 1
        if told is not None:
            told[event_id] = alone
        await append(event_id, subject, payload, alone=alone)

    spool.append = counted  # type: ignore[method-assign]
    return appends


async def send(
    env: EdgeEnv, route: str, text: str, *, stream: bool, leave: bool = False, model: str = ""
) -> tuple[int, str]:
    """One request; the status and the request id. ``leave``: drop the stream at its first
    content delta."""
    body: dict[str, Any] = {"model": model or "claude-haiku-4-5"}
    if route == "responses":
        body |= {"max_output_tokens": 4096, "input": text}
    else:
        body |= {"max_tokens": 4096, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    headers = {"x-api-key": env.key, **HEADERS}
    async with (
        httpx.AsyncClient(base_url=env.url, timeout=20) as http,
        http.stream("POST", ROUTES[route], content=orjson.dumps(body), headers=headers) as answer,
    ):
        request_id = answer.headers["request-id"]
        try:
            async for piece in answer.aiter_bytes():
                if leave and any(delta in piece for delta in DELTAS):
                    break
        except httpx.RemoteProtocolError:
            pass  # a stream the edge had to abandon (a fault of the gateway) is cut short
        return answer.status_code, request_id


async def only_event(env: EdgeEnv, appends: Counter[str], request_id: str) -> tuple[str, int]:
    """The request's one usage event (outcome, status), once it reached the stream."""
    (event,) = await usage_events(env.bus, 1)
    assert event.request_id == request_id
    assert appends == Counter({request_id: 1})
    return event.outcome, event.status_code


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer(env: EdgeEnv, route: str, stream: bool) -> None:
    appends = count_appends(env.edge.app.service.spool)
    status, request_id = await send(env, route, "hello [[tokens: 12]]", stream=stream)
    assert status == 200
    assert await only_event(env, appends, request_id) == ("ok", 200)


STALL = "x [[tokens: 30]] [[fail: stall after=2 seconds=0.8 pings=off]]"
# (fault armed at the simulator, prompt, stream, leave at the first delta, status, event)
FAILURES = {
    "upstream refusal": ("credit_balance_too_low", "hi", True, False, 400, ("upstream_error", 400)),
    "no upstream": ("500", "hi", False, False, 502, ("upstream_error", 502)),
    "stream error": (
        None,
        "x [[tokens: 20]] [[fail: stream_error after=5]]",
        True,
        False,
        200,
        ("stream_error", 200),
    ),
    "client gone": (None, STALL, True, True, 200, ("client_disconnected", 200)),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", FAILURES)
async def test_a_failure(env: EdgeEnv, route: str, case: str) -> None:
    fault, text, stream, leave, status, event = FAILURES[case]
    appends = count_appends(env.edge.app.service.spool)
    if fault is not None:
        arm(env, fault, count=10)
    answered, request_id = await send(env, route, text, stream=stream, leave=leave)
    assert answered == status
    assert await only_event(env, appends, request_id) == event


@pytest.mark.parametrize("route", ROUTES)
async def test_a_refused_hold_extension(env: EdgeEnv, route: str) -> None:
    appends = count_appends(env.edge.app.service.spool)
    small_hold(env)
    await serve_extensions(env.bus, grant=False)
    status, request_id = await send(env, route, LONG_STREAM, stream=True)
    assert status == 200
    assert await only_event(env, appends, request_id) == ("stream_error", 200)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_fault_of_the_gateway(
    env: EdgeEnv, route: str, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering the answer fails (a bug): a 500 if nothing was sent yet, one event anyway."""

    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("a bug")

    if route == "anthropic":
        if stream:
            monkeypatch.setattr(anthropic_route._PassthroughStream, "feed", broken)
        else:
            monkeypatch.setattr(anthropic_route, "client_response_headers", broken)
    elif stream:
        monkeypatch.setattr(openai_route._TranslatedStream, "feed", broken)
    elif route == "openai":
        monkeypatch.setattr(openai_route, "to_openai_completion", broken)
    else:
        monkeypatch.setattr(responses_route, "to_response", broken)
    appends = count_appends(env.edge.app.service.spool)
    status, request_id = await send(env, route, "hello", stream=stream)
    assert status == (200 if stream else 500)  # a stream had started
    assert await only_event(env, appends, request_id) == ("gateway_error", 500)


@pytest.mark.parametrize("route", ROUTES)
async def test_a_request_refused_before_admission_has_no_event(env: EdgeEnv, route: str) -> None:
    appends = count_appends(env.edge.app.service.spool)
    status, _ = await send(env, route, "hello", stream=False, model="no-such-model")
    assert status == 400
    assert env.billing.requests == []
    assert appends == Counter()


async def test_an_append_is_alone_only_while_no_other_admitted_request_is_unrecorded(
    env: EdgeEnv,
) -> None:
    """A request whose event is the edge's only one owed commits it at once (Spool.append's
    ``alone``); one that ends while another is still being served joins a group as before."""
    told: dict[str, bool] = {}
    appends = count_appends(env.edge.app.service.spool, told)
    _, lone = await send(env, "anthropic", "hello [[tokens: 3]]", stream=False)
    assert told == {lone: True}
    asked = len(sim_requests(env.sim_url))
    stalled = asyncio.ensure_future(send(env, "anthropic", STALL, stream=True))

    async def stalled_upstream() -> bool:  # admitted and sent: its event is owed from here
        return len(sim_requests(env.sim_url)) > asked

    await wait_for(stalled_upstream)
    _, quick = await send(env, "anthropic", "hello [[tokens: 3]]", stream=False)
    assert told[quick] is False  # the stalled stream's event was still owed
    status, slow = await stalled
    assert status == 200 and told[slow] is True  # the last one owed
    assert appends == Counter({lone: 1, quick: 1, slow: 1})
    assert sorted(e.request_id for e in await usage_events(env.bus, 3)) == sorted(told)
