"""Fault injection: armed through `/_sim/faults` or chosen by a `[[fail: ...]]` directive."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from tests.simulator.conftest import API_KEY, HEADERS

MODEL = "claude-haiku-4-5"


def params(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def arm(http: httpx.Client, **fault: Any) -> None:
    response = http.post("/_sim/faults", json=fault)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("fault", "exception", "status", "error_type"),
    [
        ("429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("529", anthropic.OverloadedError, 529, "overloaded_error"),
        ("500", anthropic.InternalServerError, 500, "api_error"),
        ("401", anthropic.AuthenticationError, 401, "authentication_error"),
        ("402", anthropic.PaymentRequiredError, 402, "billing_error"),
        ("403", anthropic.PermissionDeniedError, 403, "permission_error"),
        ("spend_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("credit_balance_too_low", anthropic.BadRequestError, 400, "invalid_request_error"),
    ],
)
def test_armed_status_faults_reach_the_sdk(
    client: anthropic.Anthropic,
    http: httpx.Client,
    fault: str,
    exception: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
) -> None:
    arm(http, fault=fault, count=1)
    with pytest.raises(exception) as caught:
        client.messages.create(**params())
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == error_type
    assert body["request_id"] == caught.value.response.headers["request-id"]
    if fault == "credit_balance_too_low":
        assert body["error"]["message"].startswith(
            "Your credit balance is too low to access the Anthropic API."
        )
    # Only the spend cap carries a code (and, being no rate limit to wait out, no retry-after).
    if fault == "spend_limit":
        assert caught.value.error_code == "enforced_spend_limit_reached"
        assert "retry-after" not in caught.value.response.headers
    else:
        assert caught.value.error_code is None
    assert client.messages.create(**params()).stop_reason == "end_turn"


def test_a_529_carries_retry_after_only_when_armed_with_one(
    client: anthropic.Anthropic, http: httpx.Client
) -> None:
    arm(http, fault="529")
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(**params())
    assert "retry-after" not in caught.value.response.headers
    arm(http, fault="429")
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(**params())
    assert limited.value.response.headers["retry-after"] == "1"


def test_faults_armed_for_count_tokens_strike_only_there(
    client: anthropic.Anthropic, http: httpx.Client
) -> None:
    response = http.post("/_sim/faults", json={"fault": "429", "route": "count_tokens"})
    assert response.status_code == 201
    assert response.json()["pending"][0]["route"] == "count_tokens"
    assert client.messages.create(**params()).stop_reason == "end_turn"
    count = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.RateLimitError):
        client.messages.count_tokens(**count)  # type: ignore[arg-type]
    assert client.messages.count_tokens(**count).input_tokens > 0  # type: ignore[arg-type]
    stream_fault = {"fault": "stall", "route": "count_tokens"}
    assert http.post("/_sim/faults", json=stream_fault).status_code == 400
    assert http.post("/_sim/faults", json={"fault": "429", "route": "x"}).status_code == 400


def test_values_that_cannot_be_a_beta_name_are_refused_by_name(
    client: anthropic.Anthropic, http: httpx.Client
) -> None:
    headers = {**HEADERS, "anthropic-beta": "interleaved-thinking-2025-05-14,odd value, x y"}
    for path, body in (
        ("/v1/messages", params()),
        ("/v1/messages/count_tokens", {"model": MODEL, "messages": params()["messages"]}),
    ):
        answer = http.post(path, headers=headers, json=body)
        assert answer.status_code == 400
        assert answer.json()["error"] == {
            "type": "invalid_request_error",
            "message": "Unexpected value(s) `odd value`, `x y` for the `anthropic-beta` header. "
            "Please consult our documentation at docs.anthropic.com or try again without "
            "the header.",
        }
    fine = {**HEADERS, "anthropic-beta": "claude-code-20250219, context-1m-2025-08-07"}
    assert http.post("/v1/messages", headers=fine, json=params()).status_code == 200


@pytest.mark.parametrize("fault", ["429", "529"])
def test_retry_after_is_sent_on_429_and_529(
    client: anthropic.Anthropic, http: httpx.Client, fault: str
) -> None:
    arm(http, fault=fault, retry_after=3)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(**params())
    assert caught.value.response.headers["retry-after"] == "3"


def test_directive_faults(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as rate_limited:
        client.messages.create(**params("[[fail: 429 retry_after=7]]"))
    assert rate_limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(**params("[[fail: 529]]"))
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(**params([{"type": "text", "text": "[[fail: 500]]"}]))  # type: ignore[arg-type]


def test_faults_count_down_and_match_the_upstream_key(
    client: anthropic.Anthropic, http: httpx.Client, simulator_url: str
) -> None:
    arm(http, fault="529", count=2, api_key="sk-ant-other")
    assert client.messages.create(**params()).stop_reason == "end_turn"
    with anthropic.Anthropic(
        base_url=simulator_url, api_key="sk-ant-other", max_retries=0
    ) as other:
        for _ in range(2):
            with pytest.raises(anthropic.OverloadedError):
                other.messages.create(**params())
        assert other.messages.create(**params()).stop_reason == "end_turn"
    stats = http.get("/_sim/stats").json()
    assert stats["faults_injected"] == 2
    assert stats["by_status"] == {"200": 2, "529": 2}


def test_cleared_faults_do_not_strike(client: anthropic.Anthropic, http: httpx.Client) -> None:
    arm(http, fault="500", count=5)
    assert len(http.get("/_sim/faults").json()["pending"]) == 1
    assert http.delete("/_sim/faults").status_code == 200
    assert client.messages.create(**params()).stop_reason == "end_turn"


def test_bad_fault_requests_are_refused(http: httpx.Client) -> None:
    assert http.post("/_sim/faults", json={"fault": "teapot"}).status_code == 400
    assert http.post("/_sim/faults", json={"fault": "429", "count": 0}).status_code == 400


def test_stream_error_event_after_n_deltas(client: anthropic.Anthropic, http: httpx.Client) -> None:
    response = http.post(
        "/v1/messages",
        headers=HEADERS,
        json=params("[[tokens: 10]] [[fail: stream_error after=5]]", stream=True),
    )
    assert response.status_code == 200
    assert response.text.count("event: content_block_delta") == 5
    assert response.text.endswith(
        "event: error\n"
        'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    assert "message_stop" not in response.text
    arm(http, fault="stream_error", after=2)
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(**params()) as stream,
    ):
        stream.get_final_message()
    assert "overloaded_error" in str(caught.value)


def test_stream_error_on_a_non_streaming_request_is_a_529(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(**params("[[fail: stream_error]]"))


def test_disconnect_drops_the_connection_mid_stream(http: httpx.Client) -> None:
    received: list[bytes] = []
    with (
        http.stream(
            "POST",
            "/v1/messages",
            headers=HEADERS,
            json=params("[[tokens: 10]] [[fail: disconnect after=3]]", stream=True),
        ) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        received.extend(response.iter_raw())
    received_bytes = b"".join(received)
    assert received_bytes.count(b"event: content_block_delta") == 3
    assert b"message_delta" not in received_bytes
    assert http.get("/healthz").status_code == 200


def test_disconnect_reaches_the_sdk_as_an_error(
    client: anthropic.Anthropic, http: httpx.Client
) -> None:
    arm(http, fault="disconnect", after=1, api_key=API_KEY)
    with (
        pytest.raises((httpx2.RemoteProtocolError, anthropic.APIError)),
        client.messages.stream(**params()) as stream,
    ):
        stream.get_final_message()
    arm(http, fault="disconnect")
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**params())


def test_stall_sends_pings_then_finishes(http: httpx.Client) -> None:
    # The suite's simulator pings every 0.1 s while a stream is stalled.
    response = http.post(
        "/v1/messages",
        headers=HEADERS,
        json=params("[[reply: abcdefgh]] [[fail: stall after=1 seconds=0.35]]", stream=True),
    )
    assert response.status_code == 200
    text = response.text
    assert text.count("event: ping") >= 2
    assert text.index("text_delta") < text.rindex("event: ping") < text.rindex("text_delta")
    assert text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_silent_stall_sends_no_extra_ping(http: httpx.Client) -> None:
    arm(http, fault="stall", after=0, seconds=0.2, pings=False)
    response = http.post("/v1/messages", headers=HEADERS, json=params(stream=True))
    assert response.text.count("event: ping") == 1
    assert response.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_stall_delays_a_non_streaming_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**params("[[fail: stall seconds=0.1]] ok"))
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: ok"
