"""count_tokens, models, and the `/_sim` controls (recorded requests, stats)."""

from __future__ import annotations

import base64

import anthropic
import httpx
import pytest

from tests.simulator.conftest import HEADERS


def test_count_tokens_matches_the_usage_of_the_same_request(client: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "How many tokens is this sentence?"}]
    counted = client.messages.count_tokens(model="claude-sonnet-4-6", messages=messages)  # type: ignore[arg-type]
    created = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=10,
        messages=messages,  # type: ignore[arg-type]
    )
    assert counted.input_tokens == created.usage.input_tokens == 9


def test_models_are_listed_and_retrieved(client: anthropic.Anthropic) -> None:
    listed = client.models.list()
    assert [model.id for model in listed.data] == [
        "claude-opus-4-7",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
    ]
    model = client.models.retrieve("claude-haiku-4-5")
    assert (model.type, model.display_name) == ("model", "Claude Haiku 4.5")
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-unknown")
    assert caught.value.status_code == 404


def test_models_page_shape(http: httpx.Client) -> None:
    page = http.get("/v1/models", params={"limit": 2}, headers=HEADERS).json()
    assert page["has_more"] is True
    assert (page["first_id"], page["last_id"]) == ("claude-opus-4-7", "claude-sonnet-4-6")
    rest = http.get("/v1/models", params={"after_id": "claude-sonnet-4-6"}, headers=HEADERS)
    assert [m["id"] for m in rest.json()["data"]] == ["claude-haiku-4-5"]


def test_recorded_requests_keep_the_exact_bytes(http: httpx.Client) -> None:
    raw = (
        b'{ "model":"claude-haiku-4-5",  "max_tokens": 9, '
        b'"messages":[{"role":"user","content":"caf\xc3\xa9 \\u00e9"}],"x_unknown":1}'
    )
    http.post(
        "/v1/messages?beta=true",
        headers={**HEADERS, "anthropic-beta": "some-beta", "content-type": "application/json"},
        content=raw,
    )
    http.get("/v1/models", headers=HEADERS)
    recorded = http.get("/_sim/requests").json()["data"]
    assert [(r["method"], r["path"]) for r in recorded] == [
        ("POST", "/v1/messages"),
        ("GET", "/v1/models"),
    ]
    first = recorded[0]
    assert base64.b64decode(first["body"]) == raw
    assert first["query"] == "beta=true"
    assert ["anthropic-beta", "some-beta"] in first["headers"]
    assert http.delete("/_sim/requests").status_code == 200
    assert http.get("/_sim/requests").json()["data"] == []


def test_stats_count_requests_statuses_and_tokens(http: httpx.Client) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 9,
        "messages": [{"role": "user", "content": "[[tokens: 7]]"}],
    }
    http.post("/v1/messages", headers=HEADERS, json=body)
    http.post("/v1/messages", headers=HEADERS, json={**body, "stream": True})
    http.post("/v1/messages", json=body)
    stats = http.get("/_sim/stats").json()
    assert stats["requests"] == 3
    assert stats["streams"] == 1
    assert stats["active_streams"] == 0
    assert stats["by_route"] == {"POST /v1/messages": 3}
    assert stats["by_status"] == {"200": 2, "401": 1}
    assert stats["tokens"]["output_tokens"] == 14


def test_unknown_routes_are_404_in_the_anthropic_shape(http: httpx.Client) -> None:
    response = http.get("/v1/nothing-here", headers=HEADERS)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_healthz(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}


def test_recorded_requests_say_what_each_answer_delivered(http: httpx.Client) -> None:
    """The record a gateway's books are checked against: the usage each answer carried."""
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "[[tokens: 5]]"}],
    }
    http.post("/v1/messages", headers=HEADERS, json=body)
    http.post("/v1/messages", headers=HEADERS, json={**body, "stream": True})
    http.post("/_sim/faults", json={"fault": "stream_error", "after": 2})
    http.post("/v1/messages", headers=HEADERS, json={**body, "stream": True})
    http.post("/_sim/faults", json={"fault": "529"})
    http.post("/v1/messages", headers=HEADERS, json=body)
    http.post("/_sim/faults", json={"fault": "disconnect"})
    with pytest.raises(httpx.HTTPError):
        http.post("/v1/messages", headers=HEADERS, json=body)
    recorded = http.get("/_sim/requests").json()["data"]
    served = [r["served"] for r in recorded]
    assert all(r["id"].startswith("req_") for r in recorded)
    assert len({r["id"] for r in recorded}) == len(recorded)
    final = {"input_tokens": 4, "output_tokens": 5}
    assert served[0] is not None and served[0]["complete"] and not served[0]["stream"]
    assert {k: served[0]["usage"][k] for k in final} == final
    assert served[1] is not None and served[1]["complete"] and served[1]["stream"]
    assert {k: served[1]["usage"][k] for k in final} == final
    # Cut after two deltas: only message_start's usage left (output 1), not complete.
    assert served[2] is not None and not served[2]["complete"]
    assert {k: served[2]["usage"][k] for k in final} == {"input_tokens": 4, "output_tokens": 1}
    assert served[3] is None  # a 529 serves nothing
    assert served[4] == {"stream": False, "usage": None, "complete": False, "client_gone": False}
