"""The pure rules around the upstream: which error blames a key, waits, betas, count_tokens."""

from __future__ import annotations

import random

import orjson
import pytest
from aiapi_edge.backoff import CAP_S, WaitBudget
from aiapi_edge.beta_policy import BetaPolicy, refusal_message, requested_betas
from aiapi_edge.count_limit import PerKeyRate
from aiapi_edge.verdict import classify

from .test_pure import Clock, pool


def error(type_: str, message: str = "m", code: str | None = None) -> bytes:
    details = {"error_code": code} if code else None
    return orjson.dumps(
        {"type": "error", "error": {"type": type_, "message": message, "details": details}}
    )


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (401, error("authentication_error"), "key_rejected"),
        (402, error("billing_error"), "key_rejected"),
        (403, error("permission_error"), "key_rejected"),
        (429, error("rate_limit_error", code="enforced_spend_limit_reached"), "key_rejected"),
        (429, error("rate_limit_error", code="contract_spend_limit_reached"), "key_rejected"),
        (400, error("invalid_request_error", code="organization_on_hold"), "key_rejected"),
        (429, error("rate_limit_error"), "rate_limited"),
        (429, error("rate_limit_error", code="ramp_limit_exceeded"), "rate_limited"),
        (529, error("overloaded_error"), "overloaded"),
        (500, error("api_error"), "server_error"),
        (503, b"<html>", "server_error"),
        # The customer's own: whatever the message says.
        (400, error("invalid_request_error", "Your credit balance is too low"), None),
        (
            400,
            error("invalid_request_error", "Unexpected value(s) `credit balance is too low`"),
            None,
        ),
        (404, error("not_found_error"), None),
        (413, error("request_too_large"), None),
        # A coded 402/403 is about what the request asked for (linked billing, a tool's egress).
        (402, error("billing_error", code="linked_organization_billing_unavailable"), None),
        (403, error("permission_error", code="sandbox_egress_restricted"), None),
        # The status without the matching type: not the API's verdict on the key (a WAF page).
        (403, b"<html>Forbidden</html>", None),
        (401, error("invalid_request_error"), None),
        (400, b'{"error": "not an object"}', None),
    ],
)
def test_only_the_structured_error_decides_a_keys_health(
    status: int, body: bytes, verdict: str | None
) -> None:
    assert classify(status, body) == verdict


def test_a_529_changes_no_keys_health() -> None:
    clock = Clock()
    p = pool(clock)
    assert p.acquire(set()) == 0
    p.record(0, "overloaded", 30)
    assert p.health() == [("...0000", "healthy"), ("...0000", "healthy")]
    assert p.rest_remaining() is None


def test_a_caller_without_verdicts_never_takes_the_half_open_probe() -> None:
    clock = Clock()
    p = pool(clock)
    p.record(0, "key_rejected")
    clock.now = 301.0
    assert p.acquire({1}, probe=False) is None
    assert p.acquire({1}) == 0  # the probe is still there for paying traffic


def test_waits_back_off_with_jitter_within_the_budget() -> None:
    budget = WaitBudget(5.0, random.Random(7))
    steps = [budget.backoff() for _ in range(6)]
    for step, ceiling in zip(steps, (0.25, 0.5, 1.0, 2.0, 2.0, 2.0), strict=True):
        assert ceiling / 2 <= step <= ceiling <= CAP_S
    assert budget.take(3.0) and budget.take(2.0)
    assert not budget.take(0.01)
    assert budget.waited_s == 5.0
    assert not WaitBudget(0.0).take(0.1)


def test_beta_policy_passes_everything_by_default_and_names_what_it_refuses() -> None:
    headers = [(b"Anthropic-Beta", b"a-1, b-2"), (b"anthropic-beta", b"c-3"), (b"x", b"y")]
    assert requested_betas(headers) == ["a-1", "b-2", "c-3"]
    assert BetaPolicy().refused(headers) is None
    assert BetaPolicy.from_settings("b-2", "").refused(headers) == "b-2"
    assert BetaPolicy.from_settings("", "a-1,c-3").refused(headers) == "b-2"
    assert BetaPolicy.from_settings("", " a-1 , b-2,c-3 ").refused(headers) is None
    assert BetaPolicy.from_settings("c-3", "a-1,b-2,c-3").refused(headers) == "c-3"
    assert refusal_message("x" * 300).count("x") == 100


def test_count_tokens_rate_is_a_bucket_per_key() -> None:
    clock = Clock()
    rate = PerKeyRate(60, clock=clock)  # one a second, bursts of 60
    assert all(rate.take("k1") is None for _ in range(60))
    wait = rate.take("k1")
    assert wait == pytest.approx(1.0)
    assert rate.take("k2") is None  # another key has its own bucket
    clock.now = 0.5
    assert rate.take("k1") == pytest.approx(0.5)
    clock.now = 1.0
    assert rate.take("k1") is None
    assert rate.take("k1") is not None
