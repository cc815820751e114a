"""One error vocabulary: the shared domain errors, and each route family's one table of them."""

from __future__ import annotations

import orjson
import pytest
from aiapi_accounts.errors import ERROR_TYPES, PeerRefused
from aiapi_accounts.peers import _refusal
from aiapi_edge.errors import WIRE, GatewayError, anthropic_error_body, openai_error_body_for
from aiapi_shared.billing_api import ApiError
from aiapi_shared.errors import Problem, problem_for_status


def test_every_family_names_every_domain_error() -> None:
    assert set(WIRE) == set(Problem)  # the edge's Anthropic and OpenAI routes
    assert set(ERROR_TYPES) == set(Problem)  # the customer and operator APIs
    assert len({p.status for p in Problem}) == len(Problem)  # a status names one problem


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        (400, Problem.INVALID_REQUEST),
        (402, Problem.INSUFFICIENT_BALANCE),
        (404, Problem.NOT_FOUND),
        (409, Problem.CONFLICT),
        (422, Problem.INVALID_REQUEST),  # another 4xx: the request's
        (500, Problem.BAD_GATEWAY),  # someone else's 500 is not ours
        (503, Problem.UNAVAILABLE),
        (504, Problem.BAD_GATEWAY),
        (529, Problem.OVERLOADED),
    ],
)
def test_a_bare_status_maps_into_the_set(status: int, problem: Problem) -> None:
    assert problem_for_status(status) is problem


def test_one_gateway_error_in_both_edge_shapes() -> None:
    error = GatewayError(Problem.RATE_LIMITED, "slow down", retry_after=0.2)
    assert (error.status, error.type, error.retry_after) == (429, "rate_limit_error", 1)
    assert orjson.loads(anthropic_error_body(error.type, error.message, "req_1")) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": "req_1",
    }
    assert orjson.loads(openai_error_body_for(error)) == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    coded = GatewayError(Problem.INVALID_REQUEST, "n", param="n", code="unsupported_value")
    assert orjson.loads(openai_error_body_for(coded))["error"]["code"] == "unsupported_value"


def test_a_peer_refusal_is_named_in_the_accounts_vocabulary() -> None:
    """Payments calls its 400 ``invalid_request``; the customer still reads the API's own name."""
    refusal = _refusal("payments", ApiError(error="invalid_request", message="bad", status=400))
    assert isinstance(refusal, PeerRefused)
    assert (refusal.status, refusal.type) == (400, "invalid_request_error")
    poor = _refusal("billing", ApiError(error="insufficient_balance", message="m", status=402))
    assert (poor.status, poor.type) == (402, "insufficient_balance")
    down = _refusal("payments", ApiError(error="unavailable", message="m", status=503))
    assert (down.status, down.type) == (503, "api_error")
